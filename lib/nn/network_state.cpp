// What a network's weights and shapes say: its floating-point work per forward pass, the width
// a weights file was trained at, and a state (named tensors) read from and loaded into a module.
#include <torch/torch.h>

#include <sstream>

#include "nn/gcsn_layers.hpp"
#include "nn/networks.hpp"

namespace spineparse::nn {

namespace {

// Output size of a convolution along one axis (kernel 3 or 1, padding = dilation for 3).
int64_t conv_out(int64_t n, int64_t stride) { return (n - 1) / stride + 1; }

struct Grid {
  int64_t d, h, w;
  double voxels() const { return static_cast<double>(d) * h * w; }
  Grid strided(int64_t s) const { return {d, conv_out(h, s), conv_out(w, s)}; }
};

template <class Conv>
double conv_flops(const Conv& c, const Grid& out) {
  return 2.0 * static_cast<double>(c->weight.numel()) * out.voxels();
}

// A separable convolution whose input is on grid `in`; returns its output grid.
double sep_flops(const SeparableConv& s, Grid& g) {
  const Grid out = g.strided(s->stride[1]);
  g = out;
  return conv_flops(s->depthwise, out) + conv_flops(s->pointwise, out);
}

}  // namespace

double forward_flops(const Gcsn& net, int64_t D, int64_t H, int64_t W) {
  const auto& L = *net->layers;
  const auto& xf = *L.xf;
  Grid g = Grid{D, H, W}.strided(2);  // conv1: in-plane stride 2
  double f = conv_flops(xf.conv1, g) + conv_flops(xf.conv2, g);
  Grid l2 = g, l4{};
  for (const auto* b : {&xf.block1, &xf.block2, &xf.block3, &xf.block20}) {
    for (std::size_t i = 0; i < (*b)->main.size(); ++i) {
      f += sep_flops((*b)->main[i], g);
      if ((*b)->id == 2 && i == 1) l4 = g;  // L4: before block 2's strided convolution
    }
    f += conv_flops((*b)->skip, g);
  }
  for (const auto* s : {&xf.conv3, &xf.conv4, &xf.conv5}) f += sep_flops(*s, g);
  const Grid top = g;
  f += conv_flops(L.aspp1_conv, top);
  for (const auto* s : {&L.aspp2, &L.aspp3, &L.aspp4}) {
    Grid a = top;
    f += sep_flops(*s, a);
  }
  f += conv_flops(L.gap_conv, Grid{1, 1, 1}) + conv_flops(L.concat_conv, top);
  f += conv_flops(L.proj4_conv, l4) + conv_flops(L.proj2_conv, l2);
  Grid d = l4;
  f += sep_flops(L.dec1a, d) + sep_flops(L.dec1b, d);
  if (net->with_graph) {
    const double V = l4.voxels(), C = static_cast<double>(L.graph_weight.size(0)),
                 K = static_cast<double>(L.pre_fea.size(1));
    f += 2 * V * C * K + 2 * V * C * C + 2 * V * K * C + 2 * V * K * C;  // Z, T, pooling, unpooling
    f += 3 * (2 * K * C * C + 2 * K * K * C);                            // the GCN layers
    f += conv_flops(L.g2f_conv, l4) + conv_flops(L.skip_conv, l4);
  }
  Grid e = l2;
  f += sep_flops(L.dec2a, e) + sep_flops(L.dec2b, e);
  return f + conv_flops(L.semantic, l2);
}

double forward_flops(const ResUNet2d& net, int64_t H, int64_t W) {
  double f = 0;
  std::vector<Grid> level;
  Grid g{1, H, W};
  for (int k = 0; k < 5; ++k) {
    if (k > 0) g = {1, g.h / 2, g.w / 2};  // max pooling
    level.push_back(g);
    for (const auto& c : net->encoders_[k]->conv) f += conv_flops(c, g);
  }
  for (int k = 0; k < 4; ++k) {
    // The transposed convolution: every input voxel meets every weight once.
    f += conv_flops(net->upsample_[k], level[4 - k]);
    for (const auto& c : net->decoders_[k]->conv) f += conv_flops(c, level[3 - k]);
  }
  return f + conv_flops(net->final_conv, level[0]);
}

double gcsn_width_of(const std::map<std::string, torch::Tensor>& state) {
  // conv5 has 1024 x width filters: large enough that the minimum of 4 channels never applies.
  auto it = state.find("xception_features.conv5.pointwise.weight");
  return it == state.end() ? 1.0 : static_cast<double>(it->second.size(0)) / 1024.0;
}

int64_t resunet_fmaps_of(const std::map<std::string, torch::Tensor>& state) {
  auto it = state.find("final_conv.weight");
  return it == state.end() ? 32 : it->second.size(1);
}

std::map<std::string, torch::Tensor> state_of(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& p : module.named_parameters(true)) s[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) {
    if (b.key().find("adjacency_") == std::string::npos) s[b.key()] = b.value();
  }
  return s;
}

void load_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                const std::string& source, bool allow_unexpected) {
  auto mine = state_of(module);
  std::vector<std::string> problems;
  for (const auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) {
      problems.push_back("missing '" + name + "'");
      continue;
    }
    const auto& v = it->second;
    const bool scalar_like = t.numel() == 1 && v.numel() == 1;  // num_batches_tracked: [] vs [1]
    if (!scalar_like && t.sizes() != v.sizes()) {
      std::ostringstream s;
      s << "'" << name << "' has shape " << v.sizes() << ", the network expects " << t.sizes();
      problems.push_back(s.str());
      continue;
    }
    if (t.scalar_type() != v.scalar_type()) {
      problems.push_back("'" + name + "' is " + std::string(c10::toString(v.scalar_type())) +
                         ", the network expects " + c10::toString(t.scalar_type()));
    }
  }
  if (!allow_unexpected) {
    for (const auto& [name, v] : state) {
      if (!mine.count(name)) problems.push_back("unexpected '" + name + "'");
    }
  }
  if (!problems.empty()) {
    std::string msg =
        source + " does not fit the network (" + std::to_string(problems.size()) + " problems): ";
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (i == 12) {
        msg += "; ... and " + std::to_string(problems.size() - 12) + " more";
        break;
      }
      msg += (i ? "; " : "") + problems[i];
    }
    throw std::runtime_error(msg);
  }
  torch::NoGradGuard ng;
  for (auto& [name, t] : mine) t.copy_(state.at(name).reshape(t.sizes()));
}

}  // namespace spineparse::nn
