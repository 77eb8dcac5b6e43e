// spineparse bench: the networks alone (the graph replayed case by case), the same as plain eager
// LibTorch runs them, and the machine's measured peak against which their work is a share.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "bench.hpp"
#include "plugins/network/network_options.hpp"
#include "spineparse/graph_draft.hpp"
#ifdef SPINEPARSE_WITH_TORCH
#include "nn/peak.hpp"
#include "spineparse/text.hpp"
#endif

namespace spineparse::tools::cli::bench {
namespace fs = std::filesystem;
using plugins::network::NetworkNotes;
using plugins::network::NetworkOptions;
using plugins::network::ResUNetOptions;  // every network parameter (the GCSN's are a subset)

bool is_network(const ResourceUse& u) { return u.exclusive_cores() || !u.device.empty(); }

std::set<std::string> network_nodes(const RunReport& r) {
  std::set<std::string> out;
  for (const auto& [node, use] : r.node_resources)
    if (is_network(use)) out.insert(node);
  for (const auto& [node, notes] : r.node_notes)
    if (notes.count(NetworkNotes::kPrecision)) out.insert(node);
  return out;
}

NetworkTimes network_only(const GraphSpec& g, const Registry& reg, const std::string& input,
                          int n_cases, int threads, const std::set<std::string>& networks) {
  NetworkTimes result;
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      std::vector<std::unique_ptr<Stage>> stages;
      std::vector<std::vector<std::string>> consumes;  // as the executor removes them
      std::vector<bool> is_net;
      ResourceUse declared;
      StageContext ctx;
      ctx.declare = [&declared](const ResourceUse& u) { declared = u; };
      ctx.input_dir = input;
      ctx.output_dir =
          (fs::temp_directory_path() / ("spineparse-bench-" + std::to_string(::getpid()))).string();
      ctx.total_threads = threads;
      for (const auto& n : g.nodes) {
        stages.push_back(reg.create(n.stage, n.params));
        const StageDescription* d = reg.find(n.stage);
        consumes.push_back(d ? d->consumes : std::vector<std::string>{});
        ctx.node_id = n.id;
        declared = ResourceUse{};
        stages.back()->open(ctx);
        is_net.push_back(is_network(declared) || networks.count(n.id) > 0);
      }
      auto seeds = stages[0]->enumerate(ctx);
      for (int i = 0; i < std::min<int>(n_cases + 1, static_cast<int>(seeds.size())); ++i) {
        auto c = std::make_shared<Case>(seeds[i].id, i);
        for (const auto& [k, v] : seeds[i].attrs) c->set_attr(k, v);
        CasePtr cur = c;
        std::map<std::string, double> t;
        for (std::size_t s = 0; s < stages.size(); ++s) {
          const auto t0 = std::chrono::steady_clock::now();
          cur = call_stage(*stages[s], g.nodes[s].id, cur, consumes[s]);  // the executor's rules
          const double dt =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (cur->failed())
            throw std::runtime_error("the network-only replay: case " + cur->id() +
                                     " failed at node '" + cur->error()->node +
                                     "': " + cur->error()->message);
          if (is_net[s]) t[g.nodes[s].id] += dt;
          if (i > 0) result.alone_s[g.nodes[s].id] += dt;
        }
        if (i == 0) continue;  // the first case warms the networks up
        ++result.cases;
        for (const auto& [node, dt] : t) {
          result.node_s[node] += dt;
          result.seconds_per_case += dt;
          result.node_gflop[node] +=
              std::atof(cur->attr(plugins::network::gflop_attribute(node), "0").c_str());
        }
      }
      for (auto& s : stages) s->close();
      std::error_code ec;
      fs::remove_all(ctx.output_dir, ec);
      if (result.cases > 0) {
        result.seconds_per_case /= result.cases;
        for (auto* m : {&result.node_s, &result.node_gflop, &result.alone_s})
          for (auto& [node, v] : *m) v /= result.cases;
      }
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
  return result;
}

GraphSpec eager_baseline_of(const GraphSpec& g, const Registry& reg,
                            const std::set<std::string>& networks,
                            std::vector<std::string>& changed) {
  GraphSpec b = g;
  const auto& set = params_of<ResUNetOptions>();
  for (auto& n : b.nodes) {
    const StageDescription* d = reg.find(n.stage);
    if (!d || !networks.count(n.id)) continue;
    ResUNetOptions o;
    try {
      o = set.decode(n.params);
    } catch (const std::exception&) {
      continue;  // a parameter of the same name and another type: not the network options
    }
    make_eager(o);
    const Params eager = set.encode(o);
    for (const auto& [key, value] : eager.values()) {
      if (!d->param(key) || (n.params.has(key) && n.params.values().at(key) == value)) continue;
      n.params.set(key, value);
      changed.push_back(n.id + "." + key + "=" + param_value_to_string(value));
    }
  }
  return b;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

json measure_peaks(const RunReport& r, int threads, std::map<std::string, double>& peak_of) {
  json peaks = json::array();
#ifdef SPINEPARSE_WITH_TORCH
  // bfloat16 on the CPU when it has it natively or a network ran in it (emulated otherwise).
  bool cpu_bf16 = nn::cpu_features().native_bf16(), cpu_int8 = false;
  std::map<std::string, std::vector<nn::Precision>> wanted;
  for (const auto& [node, notes] : r.node_notes) {
    auto d = notes.find(NetworkNotes::kDevice);
    auto p = notes.find(NetworkNotes::kPrecision);
    if (d != notes.end() && d->second == "cpu" && p != notes.end() && p->second == "bf16")
      cpu_bf16 = true;
    if (d != notes.end() && d->second == "cpu" && p != notes.end() && p->second == "int8")
      cpu_int8 = true;
    if (d != notes.end() && d->second != "cpu")
      wanted[d->second] = {nn::Precision::kFloat32, nn::Precision::kFloat16,
                           nn::Precision::kBFloat16};
  }
  wanted["cpu"] = {nn::Precision::kFloat32};
  if (cpu_bf16) wanted["cpu"].push_back(nn::Precision::kBFloat16);
  if (cpu_int8) wanted["cpu"].push_back(nn::Precision::kInt8);  // a network ran in it
  for (const auto& [device, precisions] : wanted) {
    for (const auto p : precisions) {
      std::fprintf(stderr, "bench: measuring the %s peak on %s\n", nn::precision_name(p),
                   device.c_str());
      nn::PeakProbe probe;
      try {
        probe = nn::measure_peak(p, device, threads);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench: the %s peak on %s could not be measured: %s\n",
                     nn::precision_name(p), device.c_str(), first_line(e.what()).c_str());
        peaks.push_back({{"device", device},
                         {"precision", nn::precision_name(p)},
                         {"error", first_line(e.what())}});
        continue;
      }
      peak_of[device + "/" + probe.precision] = probe.peak_gflops();
      peaks.push_back({{"device", device},
                       {"precision", probe.precision},
                       {"threads", probe.threads},
                       {"gemm_gflops", probe.gemm_gflops},
                       {"conv_gflops", probe.conv_gflops},
                       {"peak_gflops", probe.peak_gflops()}});
    }
  }
#else
  (void)r, (void)threads, (void)peak_of;
#endif
  return peaks;
}

json network_table(const GraphSpec& g, const RunReport& r, const NetworkTimes& net,
                   const std::map<std::string, double>& peak_of) {
  json nets = json::array();
  double gflop = 0, seconds = 0;
  std::string key_all;
  bool one_key = true;
  const auto networks = network_nodes(r);
  for (const auto& n : g.nodes) {
    if (!networks.count(n.id)) continue;
    std::map<std::string, std::string> notes;
    if (auto it = r.node_notes.find(n.id); it != r.node_notes.end()) notes = it->second;
    const std::string precision =
        notes.count(NetworkNotes::kPrecision) ? notes[NetworkNotes::kPrecision] : "unknown";
    const std::string device =
        notes.count(NetworkNotes::kDevice) ? notes[NetworkNotes::kDevice] : "unknown";
    const double s = net.node_s.count(n.id) ? net.node_s.at(n.id) : 0.0;
    const double f = net.node_gflop.count(n.id) ? net.node_gflop.at(n.id) : 0.0;
    json row = {{"node", n.id},
                {"precision", precision},
                {"precision_reason", notes[NetworkNotes::kPrecisionReason]},
                {"device", device},
                {"gflop_per_case", f},
                {"seconds_per_case", s},
                {"gflops", s > 0 ? f / s : 0.0}};
    const std::string key = device + "/" + precision;
    if (auto pk = peak_of.find(key); pk != peak_of.end() && s > 0 && f > 0)
      row["share_of_peak"] = f / s / pk->second;
    one_key = one_key && (key_all.empty() || key_all == key);
    key_all = key;
    gflop += f;
    seconds += s;
    nets.push_back(row);
  }
  json total = {{"node", "all networks"},
                {"gflop_per_case", gflop},
                {"seconds_per_case", seconds},
                {"gflops", seconds > 0 ? gflop / seconds : 0.0}};
  if (auto pk = peak_of.find(key_all); one_key && pk != peak_of.end() && seconds > 0 && gflop > 0)
    total["share_of_peak"] = gflop / seconds / pk->second;
  nets.push_back(total);
  return nets;
}

json limit_of(const json& networks, const std::map<std::string, double>& peak_of,
              double seconds_per_case, double network_only_s, const RunReport& first_run) {
  double limit = 0;
  for (const auto& n : networks) {
    if (n["node"] == "all networks") continue;
    const auto pk =
        peak_of.find(n["device"].get<std::string>() + "/" + n["precision"].get<std::string>());
    if (pk == peak_of.end() || pk->second <= 0) return json::object();
    limit += n["gflop_per_case"].get<double>() / pk->second;
  }
  if (limit <= 0) return json::object();
  auto share = [limit](double s) { return s > 0 ? limit / s : 0.0; };
  json j = {{"seconds_per_case", limit},
            {"how",
             "the networks' GFLOP per case / the measured peak of each network's precision on its "
             "device: the fastest any implementation doing the same arithmetic could go"},
            {"end_to_end_share", share(seconds_per_case)},
            {"network_only_share", share(network_only_s)}};
  const int n = first_run.ok + first_run.failed;
  if (n > 0) {
    const double s = first_run.open_s + first_run.wall_s;
    j["first_run"] = {{"cases", n},
                      {"seconds", s},
                      {"share", share(s / n)},
                      {"how",
                       "the warm-up run, the first of the process as a user starts one: stages "
                       "opened (weights, primitives) and its cases, over the limit for as many"}};
  }
  return j;
}

}  // namespace spineparse::tools::cli::bench
