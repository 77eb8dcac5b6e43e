#include "nn/torch_util.hpp"

#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "nn/softmax_planes.hpp"

namespace spineparse::nn {

torch::Tensor view_of(const NdArray& a) {
  torch::ScalarType t;
  switch (a.dtype()) {
    case DType::kFloat32:
      t = torch::kFloat32;
      break;
    case DType::kUInt8:
      t = torch::kUInt8;
      break;
    case DType::kInt64:
      t = torch::kInt64;
      break;
    case DType::kFloat64:
      t = torch::kFloat64;
      break;
    case DType::kInt16:
      t = torch::kInt16;
      break;
    case DType::kInt32:
      t = torch::kInt32;
      break;
    default:
      throw std::runtime_error("view_of: unsupported dtype");
  }
  return torch::from_blob(const_cast<void*>(a.raw()), a.shape(), torch::TensorOptions().dtype(t));
}

std::shared_ptr<NdArray> to_ndarray(const torch::Tensor& t) {
  DType d;
  switch (t.scalar_type()) {
    case torch::kFloat32:
      d = DType::kFloat32;
      break;
    case torch::kUInt8:
      d = DType::kUInt8;
      break;
    case torch::kInt64:
      d = DType::kInt64;
      break;
    case torch::kFloat64:
      d = DType::kFloat64;
      break;
    default:
      d = DType::kFloat32;
  }
  // One copy, whatever the tensor's device, strides or dtype: straight into the array.
  auto a = std::make_shared<NdArray>(d, t.sizes().vec());
  view_of(*a).copy_(t.detach());
  return a;
}

void softmax_into_planes(const torch::Tensor& logits, const torch::Tensor& probs,
                         std::int64_t first) {
  const std::int64_t n = logits.size(0), C = logits.size(1);
  const std::int64_t P = logits.size(2) * logits.size(3), plane = probs.size(1) * P;
  if (!(logits.is_cpu() && probs.is_cpu() && probs.is_contiguous() &&
        probs.scalar_type() == torch::kFloat32 && probs.size(0) == C &&
        probs.size(2) * probs.size(3) == P && first >= 0 && first + n <= probs.size(1)))
    throw std::invalid_argument(c10::str("softmax_into_planes: logits ", logits.sizes(),
                                         " do not fit slices from ", first, " of probs ",
                                         probs.sizes()));
  const auto l = logits.to(torch::kFloat32);
  if (!l.is_contiguous(torch::MemoryFormat::ChannelsLast)) {
    probs.narrow(1, first, n).copy_(torch::softmax(l, 1).permute({1, 0, 2, 3}));
    return;
  }
  const float* x = l.data_ptr<float>();
  float* out = probs.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i)
    at::parallel_for(0, P, 4096, [&](std::int64_t b, std::int64_t e) {
      softmax_to_planes(x + (i * P + b) * C, e - b, C, out + (first + i) * P + b, plane);
    });
}

std::string canonical_device(const std::string& spec, bool cuda_available, int gpus) {
  if (spec == "cpu") return "cpu";
  if (spec == "auto") return cuda_available && gpus > 0 ? "cuda:0" : "cpu";
  if (spec != "cuda" && spec.rfind("cuda:", 0) != 0)
    throw std::runtime_error("device '" + spec + "' is not cpu, cuda, cuda:N or auto");
  int index = 0;
  if (spec != "cuda") {
    const std::string n = spec.substr(5);
    if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
      throw std::runtime_error("device '" + spec + "' is not cpu, cuda, cuda:N or auto");
    index = std::stoi(n);
  }
  if (!cuda_available || gpus <= 0)
    throw std::runtime_error(
        "device '" + spec +
        "' asked for, but this LibTorch has no CUDA or no GPU is visible (use cpu or auto)");
  if (index >= gpus)
    throw std::runtime_error("device '" + spec + "': only " + std::to_string(gpus) +
                             " GPU(s) visible");
  return "cuda:" + std::to_string(index);
}

torch::Device parse_device(const std::string& spec) {
  const bool cuda = torch::cuda::is_available();
  return torch::Device(
      canonical_device(spec, cuda, cuda ? static_cast<int>(torch::cuda::device_count()) : 0));
}

void set_cuda_autocast(bool on, torch::ScalarType dtype) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (on) at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, on);
#else
  if (on) at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(on);
#endif
  if (!on) at::autocast::clear_cache();
}

namespace {
std::mutex tf32_mutex;
int tf32_state = -1;  // -1 not set yet, else 0 / 1
}  // namespace

void set_tf32(bool allow) {
  std::lock_guard<std::mutex> lk(tf32_mutex);
  if (tf32_state >= 0 && tf32_state != static_cast<int>(allow))
    throw std::runtime_error(
        std::string("tf32=") + (allow ? "true" : "false") + " but another network node of this "
        "process runs with tf32=" + (allow ? "false" : "true") +
        ": TensorFloat-32 is one switch per process; give every CUDA node the same tf32");
  tf32_state = allow;
  at::globalContext().setAllowTF32CuDNN(allow);
  at::globalContext().setAllowTF32CuBLAS(allow);
}

bool tf32_allowed() {
  return at::globalContext().allowTF32CuDNN() || at::globalContext().allowTF32CuBLAS();
}

bool is_sticky_device_error(const std::string& message) {
  static const char* const kSticky[] = {
      "illegal memory access", "device-side assert", "unspecified launch failure",
      "illegal instruction",   "misaligned address", "invalid program counter",
      "hardware stack error",  "launch timed out",   "uncorrectable ECC error",
      "CUDA driver is shutting down", "device is no longer available"};
  for (const char* s : kSticky)
    if (message.find(s) != std::string::npos) return true;
  return false;
}

StageStream::StageStream(torch::Device device) {
  if (!device.is_cuda()) return;
  if (!device.has_index())  // parse_device always gives one; a stream of index -1 corrupts memory
    throw std::logic_error("StageStream needs a device with an index, not " + device.str());
  const auto* impl = c10::impl::getDeviceGuardImpl(device.type());
  stream_ = impl->getStreamFromGlobalPool(device, /*isHighPriority=*/false);
  active_ = true;
}

StageStream::Use::Use(const StageStream& s) {
  if (!s.active_) return;
  guard_ = std::make_shared<c10::StreamGuard>(s.stream_);  // also makes its device current
}
StageStream::Use::~Use() = default;

void StageStream::synchronize() const {
  if (!active_) return;
  c10::impl::getDeviceGuardImpl(stream_.device_type())->synchronizeStream(stream_);
}

torch::Tensor pinned_copy(const torch::Tensor& host, torch::Device for_device) {
  if (!for_device.is_cuda()) return host;
  return torch::empty(host.sizes(), host.options().pinned_memory(true)).copy_(host);
}

torch::Tensor to_device_async(const torch::Tensor& staged, torch::Device device) {
  if (!device.is_cuda()) return staged.to(device);
  // The pinned-memory allocator records the copy on the stream and keeps `staged` until it ran.
  return staged.to(device, /*non_blocking=*/true);
}

std::string loaded_library(const std::string& prefix) {
  struct Search {
    const std::string* prefix;
    std::string found;
  } search{&prefix, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        const std::string path = info->dlpi_name ? info->dlpi_name : "";
        const std::string name = std::filesystem::path(path).filename().string();
        if (name.rfind(*s->prefix, 0) != 0) return 0;
        s->found = path;
        return 1;
      },
      &search);
  return search.found;
}

bool release_pinned_cache() {
  const std::string path = loaded_library("libtorch_cuda.so");
  if (path.empty()) return false;
  void* lib = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (!lib) return false;
  // at::cuda::CachingHostAllocator_emptyCache(), exported by LibTorch 1.13 to 2.6.
  using Fn = void (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "_ZN2at4cuda30CachingHostAllocator_emptyCacheEv"));
  if (fn) fn();
  dlclose(lib);
  return fn != nullptr;
}

void set_torch_threads(int threads) {
  if (threads <= 0 || at::get_num_threads() == threads) return;  // the count of this thread
  static std::mutex mu;  // the setter also updates process-wide defaults (pthreadpool, new threads)
  std::lock_guard<std::mutex> lk(mu);
  at::set_num_threads(threads);
}

}  // namespace spineparse::nn
