#include "nn/checkpoint.hpp"

#include <zip.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <variant>

namespace spineparse::nn {

namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;
struct Global {
  std::string module, name;
  std::string full() const { return module + "." + name; }
};
struct StorageRef {
  std::string key;
  torch::ScalarType dtype;
  std::int64_t numel;
};
struct Mark {};
struct Value {
  // None, bool, int, float, string, list, tuple, dict, tensor, global, storage, mark
  std::variant<std::monostate, bool, std::int64_t, double, std::string, std::vector<ValuePtr>,
               std::vector<std::pair<ValuePtr, ValuePtr>>, torch::Tensor, Global, StorageRef, Mark>
      v;
  bool is_tuple = false;
};

ValuePtr make(decltype(Value::v) v, bool tuple = false) {
  auto p = std::make_shared<Value>();
  p->v = std::move(v);
  p->is_tuple = tuple;
  return p;
}

torch::ScalarType storage_dtype(const std::string& name) {
  static const std::map<std::string, torch::ScalarType> m = {
      {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64},
      {"HalfStorage", torch::kFloat16},  {"BFloat16Storage", torch::kBFloat16},
      {"LongStorage", torch::kInt64},    {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16},   {"CharStorage", torch::kInt8},
      {"ByteStorage", torch::kUInt8},    {"BoolStorage", torch::kBool}};
  auto it = m.find(name);
  if (it == m.end()) throw std::runtime_error("unsupported storage type torch." + name);
  return it->second;
}

class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    std::error_code ec;
    archive_bytes_ = std::filesystem::file_size(path, ec);
    int err = 0;
    z_ = zip_open(path.c_str(), ZIP_RDONLY, &err);
    if (!z_) {
      zip_error_t e;
      zip_error_init_with_code(&e, err);
      std::string msg = zip_error_strerror(&e);
      zip_error_fini(&e);
      throw std::runtime_error(
          path + " is not a torch.save zip archive (" + msg +
          "); checkpoints from PyTorch < 1.6 (legacy format) are not supported");
    }
    // Entries live under "<archive name>/"; find data.pkl to learn the prefix.
    const zip_int64_t n = zip_get_num_entries(z_, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* entry = zip_get_name(z_, static_cast<zip_uint64_t>(i), 0);
      const std::string name = entry ? entry : "";
      if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) {
        prefix_ = name.substr(0, name.size() - 8);
        break;
      }
    }
    if (n > 0 && prefix_.empty() && zip_name_locate(z_, "data.pkl", 0) < 0) {
      zip_discard(z_);  // the destructor does not run when the constructor throws
      z_ = nullptr;
      throw std::runtime_error(path + ": no data.pkl in the archive (not a torch.save file)");
    }
  }
  ~Archive() {
    if (z_) zip_close(z_);
  }
  std::string read(const std::string& name) const {
    const std::string full = prefix_ + name;
    zip_stat_t st;
    if (zip_stat(z_, full.c_str(), 0, &st) != 0)
      throw std::runtime_error(path_ + ": archive has no entry " + full);
    // Deflate expands at most ~1032:1: an entry claiming more than that lies (no allocation).
    if (!(st.valid & ZIP_STAT_SIZE) || st.size > 1100 * archive_bytes_ + 4096)
      throw std::runtime_error(path_ + ": entry " + full + " claims " + std::to_string(st.size) +
                               " bytes, more than the archive can hold");
    zip_file_t* f = zip_fopen(z_, full.c_str(), 0);
    if (!f) throw std::runtime_error(path_ + ": cannot open entry " + full);
    std::string data(st.size, '\0');
    const zip_int64_t got = zip_fread(f, data.data(), st.size);
    zip_fclose(f);
    if (got != static_cast<zip_int64_t>(st.size))
      throw std::runtime_error(path_ + ": entry " + full + " is truncated");
    return data;
  }

 private:
  std::string path_, prefix_;
  zip_t* z_ = nullptr;
  std::uintmax_t archive_bytes_ = 0;
};

class Unpickler {
 public:
  Unpickler(const std::string& data, const Archive& archive, const std::string& path)
      : d_(data), archive_(archive), path_(path) {}

  // One case per opcode in a single switch, kept whole (over the 80-line guideline): the
  // opcodes read as the pickle protocol's table, and splitting them would only scatter it.
  ValuePtr run() {
    while (pos_ < d_.size()) {
      const unsigned char op = u8();
      switch (op) {
        case 0x80:
          u8();
          break;  // PROTO
        case 0x95:
          pos_ += 8;
          break;  // FRAME
        case '.':
          return pop();  // STOP
        case '}':
          push(make(std::vector<std::pair<ValuePtr, ValuePtr>>{}));
          break;  // EMPTY_DICT
        case ']':
          push(make(std::vector<ValuePtr>{}));
          break;  // EMPTY_LIST
        case ')':
          push(make(std::vector<ValuePtr>{}, true));
          break;  // EMPTY_TUPLE
        case '(':
          push(make(Mark{}));
          break;  // MARK
        case 'N':
          push(make(std::monostate{}));
          break;  // NONE
        case 0x88:
          push(make(true));
          break;  // NEWTRUE
        case 0x89:
          push(make(false));
          break;  // NEWFALSE
        case 'K':
          push(make(static_cast<std::int64_t>(u8())));
          break;  // BININT1
        case 'M':
          push(make(static_cast<std::int64_t>(uint_n(2))));
          break;  // BININT2
        case 'J':
          push(make(static_cast<std::int64_t>(static_cast<std::int32_t>(uint_n(4)))));
          break;      // BININT
        case 0x8a: {  // LONG1
          const int n = u8();
          if (n > 8) throw std::runtime_error(path_ + ": pickle integer wider than 64 bits");
          const std::string b = str(static_cast<std::size_t>(n));  // bounds-checked
          std::uint64_t u = 0;
          for (int i = 0; i < n; ++i)
            u |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[i])) << (8 * i);
          if (n > 0 && n < 8 && (b[n - 1] & 0x80))
            u -= std::uint64_t{1} << (8 * n);  // two's complement
          push(make(static_cast<std::int64_t>(u)));
          break;
        }
        case 'G': {                        // BINFLOAT, big-endian double
          const std::string raw = str(8);  // bounds-checked
          std::uint64_t b = 0;
          for (int i = 0; i < 8; ++i) b = (b << 8) | static_cast<unsigned char>(raw[i]);
          double v;
          std::memcpy(&v, &b, 8);
          push(make(v));
          break;
        }
        case 'X':
          push(make(str(uint_n(4))));
          break;  // BINUNICODE
        case 0x8c:
          push(make(str(u8())));
          break;  // SHORT_BINUNICODE
        case 'U':
          push(make(str(u8())));
          break;  // SHORT_BINSTRING
        case 'q':
          memo_[u8()] = top();
          break;  // BINPUT
        case 'r':
          memo_[uint_n(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;  // MEMOIZE
        case 'h':
          push(memo_.at(u8()));
          break;  // BINGET
        case 'j':
          push(memo_.at(uint_n(4)));
          break;     // LONG_BINGET
        case 'c': {  // GLOBAL
          std::string module = line(), name = line();
          push(make(Global{module, name}));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          push(make(Global{std::get<std::string>(module->v), std::get<std::string>(name->v)}));
          break;
        }
        case 0x85:
          push(make(std::vector<ValuePtr>{pop()}, true));
          break;      // TUPLE1
        case 0x86: {  // TUPLE2
          auto b = pop(), a = pop();
          push(make(std::vector<ValuePtr>{a, b}, true));
          break;
        }
        case 0x87: {  // TUPLE3
          auto c = pop(), b = pop(), a = pop();
          push(make(std::vector<ValuePtr>{a, b, c}, true));
          break;
        }
        case 't':
          push(make(pop_mark(), true));
          break;     // TUPLE
        case 'a': {  // APPEND
          auto v = pop();
          std::get<std::vector<ValuePtr>>(top()->v).push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          auto& l = std::get<std::vector<ValuePtr>>(top()->v);
          l.insert(l.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          auto v = pop(), k = pop();
          dict_of(top()).emplace_back(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          auto& dct = dict_of(top());
          for (std::size_t i = 0; i + 1 < items.size(); i += 2)
            dct.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'Q':
          push(persistent(pop()));
          break;     // BINPERSID
        case 'R': {  // REDUCE
          auto args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: state of an object (OrderedDict._metadata): not needed
        default: {
          std::ostringstream s;
          s << path_ << ": unsupported pickle opcode 0x" << std::hex << static_cast<int>(op)
            << " at byte " << std::dec << pos_ - 1
            << " (not a checkpoint written by torch.save of tensors and plain values)";
          throw std::runtime_error(s.str());
        }
      }
    }
    throw std::runtime_error(path_ + ": pickle ends without STOP (truncated?)");
  }

 private:
  unsigned char u8() {
    if (pos_ >= d_.size()) throw std::runtime_error(path_ + ": pickle is truncated");
    return static_cast<unsigned char>(d_[pos_++]);
  }
  std::uint64_t uint_n(int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(u8()) << (8 * i);
    return v;
  }
  std::string str(std::size_t n) {
    if (pos_ + n > d_.size()) throw std::runtime_error(path_ + ": pickle is truncated");
    std::string s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string line() {
    auto e = d_.find('\n', pos_);
    if (e == std::string::npos) throw std::runtime_error(path_ + ": bad GLOBAL");
    std::string s = d_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
  }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr top() {
    if (stack_.empty()) throw std::runtime_error(path_ + ": pickle stack underflow");
    return stack_.back();
  }
  ValuePtr pop() {
    auto v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_mark() {
    std::vector<ValuePtr> items;
    while (!stack_.empty() && !std::holds_alternative<Mark>(stack_.back()->v))
      items.insert(items.begin(), pop());
    if (stack_.empty()) throw std::runtime_error(path_ + ": pickle MARK missing");
    stack_.pop_back();
    return items;
  }
  std::vector<std::pair<ValuePtr, ValuePtr>>& dict_of(const ValuePtr& v) {
    auto* d = std::get_if<std::vector<std::pair<ValuePtr, ValuePtr>>>(&v->v);
    if (!d) throw std::runtime_error(path_ + ": SETITEM on a non-dict");
    return *d;
  }
  const std::vector<ValuePtr>& tuple(const ValuePtr& v) {
    return std::get<std::vector<ValuePtr>>(v->v);
  }

  ValuePtr persistent(const ValuePtr& pid) {
    // ('storage', torch.FloatStorage, key, location, numel)
    const auto& t = tuple(pid);
    if (t.size() < 5 || std::get<std::string>(t[0]->v) != "storage")
      throw std::runtime_error(path_ + ": unknown persistent id");
    const auto& g = std::get<Global>(t[1]->v);
    return make(StorageRef{std::get<std::string>(t[2]->v), storage_dtype(g.name),
                           std::get<std::int64_t>(t[4]->v)});
  }

  torch::Tensor storage_tensor(const StorageRef& s) {
    auto it = storages_.find(s.key);
    if (it != storages_.end()) return it->second;
    const std::string bytes = archive_.read("data/" + s.key);
    const auto elem = static_cast<std::int64_t>(c10::elementSize(s.dtype));
    if (s.numel < 0 || s.numel > static_cast<std::int64_t>(bytes.size()) / elem)
      throw std::runtime_error(path_ + ": storage " + s.key + " holds " +
                               std::to_string(bytes.size()) + " bytes, not " +
                               std::to_string(s.numel) + " elements (truncated or corrupt)");
    const std::int64_t want = s.numel * elem;
    auto t = torch::empty({s.numel}, torch::TensorOptions().dtype(s.dtype));
    if (want > 0) std::memcpy(t.data_ptr(), bytes.data(), static_cast<std::size_t>(want));
    storages_[s.key] = t;
    return t;
  }

  std::vector<std::int64_t> ints(const ValuePtr& v) {
    std::vector<std::int64_t> out;
    for (const auto& e : tuple(v)) out.push_back(std::get<std::int64_t>(e->v));
    return out;
  }

  ValuePtr reduce(const ValuePtr& fn, const ValuePtr& args) {
    const auto* g = std::get_if<Global>(&fn->v);
    if (!g) throw std::runtime_error(path_ + ": REDUCE of a non-class");
    const std::string name = g->full();
    const auto& a = tuple(args);
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      return make(std::vector<std::pair<ValuePtr, ValuePtr>>{});
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      const auto& s = std::get<StorageRef>(a.at(0)->v);
      const std::int64_t offset = std::get<std::int64_t>(a.at(1)->v);
      auto size = ints(a.at(2)), stride = ints(a.at(3));
      return make(storage_tensor(s).as_strided(size, stride, offset).clone());
    }
    if (name == "torch._utils._rebuild_parameter") return a.at(0);
    throw std::runtime_error(path_ + ": unsupported class " + name + " in the checkpoint");
  }

  const std::string& d_;
  const Archive& archive_;
  std::string path_;
  std::size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::map<std::uint64_t, ValuePtr> memo_;
  std::map<std::string, torch::Tensor> storages_;
};

std::string key_string(const ValuePtr& k) {
  if (auto* s = std::get_if<std::string>(&k->v)) return *s;
  if (auto* i = std::get_if<std::int64_t>(&k->v)) return std::to_string(*i);
  return "?";
}

bool is_state_dict(const std::vector<std::pair<ValuePtr, ValuePtr>>& d) {
  if (d.empty()) return false;
  for (const auto& [k, v] : d) {
    if (!std::holds_alternative<torch::Tensor>(v->v)) return false;
  }
  return true;
}

Checkpoint read_checkpoint_unchecked(const std::string& path) {
  Archive archive(path);
  const std::string pkl = archive.read("data.pkl");
  Unpickler u(pkl, archive, path);
  ValuePtr root = u.run();
  const auto* top = std::get_if<std::vector<std::pair<ValuePtr, ValuePtr>>>(&root->v);
  if (!top) throw std::runtime_error(path + ": the checkpoint is not a dict");
  Checkpoint c;
  const std::vector<std::pair<ValuePtr, ValuePtr>>* sd = nullptr;
  if (is_state_dict(*top)) sd = top;
  for (const auto& [k, v] : *top) {
    const std::string key = key_string(k);
    if (key == "model_state_dict" || key == "state_dict")
      sd = &std::get<std::vector<std::pair<ValuePtr, ValuePtr>>>(v->v);
    if (auto* i = std::get_if<std::int64_t>(&v->v)) c.info[key] = std::to_string(*i);
    if (auto* f = std::get_if<double>(&v->v)) c.info[key] = std::to_string(*f);
    if (auto* s = std::get_if<std::string>(&v->v)) c.info[key] = *s;
    if (auto* b = std::get_if<bool>(&v->v)) c.info[key] = *b ? "true" : "false";
  }
  if (!sd)
    throw std::runtime_error(
        path + ": no model_state_dict in the checkpoint and it is not a state dict itself");
  for (const auto& [k, v] : *sd) {
    std::string name = key_string(k);
    if (name.rfind("module.", 0) == 0) name = name.substr(7);  // saved from DataParallel
    const auto* t = std::get_if<torch::Tensor>(&v->v);
    if (!t) throw std::runtime_error(path + ": state dict entry '" + name + "' is not a tensor");
    c.state_dict[name] = *t;
  }
  return c;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path) {
  try {
    return read_checkpoint_unchecked(path);
  } catch (const std::bad_variant_access&) {
    throw std::runtime_error(path +
                             ": malformed pickle (a value of an unexpected type where "
                             "torch.save writes a string, number, tuple or dict)");
  }
}

}  // namespace spineparse::nn
