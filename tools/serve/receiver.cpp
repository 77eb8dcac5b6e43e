#include "receiver.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scppool.h>
#include <dcmtk/dcmnet/scpthrd.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <dcmtk/oflog/oflog.h>
#include <fmt/core.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "journal.hpp"
#include "uids.hpp"

namespace spineparse::serve {
namespace fs = std::filesystem;

namespace {

constexpr Uint16 kStatusOk = 0x0000;
constexpr Uint16 kOutOfResources = 0xA700;
constexpr Uint16 kDataSetMismatch = 0xA900;
constexpr Uint16 kCannotUnderstand = 0xC000;

}  // namespace

struct Receiver::State {
  ReceiverOptions options;
  Journal& journal;
  LogFn log;
  std::atomic<long long> spool_bytes{0};
  bool stop_requested = false;  // under pool_mutex
  std::unique_ptr<DcmTLSTransportLayer> tls;
  std::mutex pool_mutex;
  DcmBaseSCPPool* pool = nullptr;

  bool spool_full() const {
    return options.max_spool_bytes > 0 &&
           static_cast<double>(spool_bytes.load()) >= options.max_spool_bytes;
  }
  bool allowed(const std::string& ae, const std::string& host) const {
    if (options.allow.empty()) return true;
    for (const auto& a : options.allow) {
      const auto at = a.find('@');
      if (a.substr(0, at) != ae) continue;
      if (at == std::string::npos || a.substr(at + 1) == host) return true;
    }
    return false;
  }
};

namespace {

// DcmSCPPool makes one SCP per association with its default constructor: the node's state reaches
// it through this pointer, set while a Receiver runs (one per process).
Receiver::State* g_state = nullptr;

// One association: checks who calls, stores instances, counts them for the log line.
class StoreScp : public DcmThreadSCP {
 protected:
  void notifyAssociationRequest(const T_ASC_Parameters& params,
                                DcmSCPActionType& action) override {
    calling_ae_ = params.DULparams.callingAPTitle;
    host_ = params.DULparams.callingPresentationAddress;
    if (const auto colon = host_.rfind(':'); colon != std::string::npos) host_.resize(colon);
    started_ = std::chrono::steady_clock::now();
    if (g_state->spool_full()) {
      refused_ = "the spool is full (--max-spool-gb)";
      action = DCMSCP_ACTION_REFUSE_ASSOCIATION;
    }
  }
  OFBool checkCalledAETitleAccepted(const OFString& called) override {
    if (called == g_state->options.aet.c_str()) return OFTrue;
    refused_ = fmt::format("called AE title '{}' is not '{}'", called.c_str(),
                           g_state->options.aet);
    return OFFalse;
  }
  OFBool checkCallingAETitleAccepted(const OFString& calling) override {
    if (g_state->allowed(calling.c_str(), host_)) return OFTrue;
    refused_ = fmt::format("calling AE title '{}' from {} is not allowed (--allow)",
                           calling.c_str(), host_);
    return OFFalse;
  }
  void notifyAssociationAcknowledge() override { accepted_ = true; }
  void notifyAssociationTermination() override {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (!accepted_) {
      g_state->log(fmt::format("association from {}@{} refused: {}", calling_ae_, host_,
                               refused_.empty() ? "no presentation context it asked for is accepted"
                                                : refused_));
      return;
    }
    g_state->log(fmt::format("association from {}@{}: {} instance{} received ({:.1f} MB) in {:.1f} s{}",
                             calling_ae_, host_, stored_, stored_ == 1 ? "" : "s", static_cast<double>(bytes_) / 1e6, s,
                             rejected_ ? fmt::format(", {} refused", rejected_) : ""));
  }
  OFCondition handleIncomingCommand(T_DIMSE_Message* msg,
                                    const DcmPresentationContextInfo& info) override {
    if (msg->CommandField != DIMSE_C_STORE_RQ)
      return DcmThreadSCP::handleIncomingCommand(msg, info);
    T_DIMSE_C_StoreRQ& rq = msg->msg.CStoreRQ;
    const fs::path incoming = fs::path(g_state->options.spool) / ".incoming";
    std::error_code ec;
    fs::create_directories(incoming, ec);
    thread_local std::mt19937_64 random(std::random_device{}());
    const fs::path part = incoming / fmt::format("{:016x}.part", random());
    OFCondition c = receiveSTORERequest(rq, info.presentationContextID, OFString(part.c_str()));
    if (c.bad()) {
      fs::remove(part, ec);
      return c;
    }
    const Uint16 status = keep(part, rq);
    if (status != kStatusOk) {
      fs::remove(part, ec);
      ++rejected_;
    }
    return sendSTOREResponse(info.presentationContextID, rq, status);
  }

 private:
  // Moves a received instance into its series' folder and records it.
  Uint16 keep(const fs::path& part, const T_DIMSE_C_StoreRQ& rq) {
    DcmFileFormat file;
    if (file.loadFileUntilTag(part.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                              ERM_autoDetect, DCM_PixelData)
            .bad()) {
      g_state->log(fmt::format("{}@{}: instance {} is not a DICOM data set: refused", calling_ae_,
                               host_, rq.AffectedSOPInstanceUID));
      return kCannotUnderstand;
    }
    OFString study, series, sop;
    DcmDataset* ds = file.getDataset();
    ds->findAndGetOFString(DCM_StudyInstanceUID, study);
    ds->findAndGetOFString(DCM_SeriesInstanceUID, series);
    ds->findAndGetOFString(DCM_SOPInstanceUID, sop);
    if (!is_uid(study.c_str()) || !is_uid(series.c_str()) || !is_uid(sop.c_str()) ||
        sop != rq.AffectedSOPInstanceUID) {
      g_state->log(fmt::format(
          "{}@{}: instance {} has no valid study, series or SOP instance UID (study '{}', series "
          "'{}', SOP '{}'): refused",
          calling_ae_, host_, rq.AffectedSOPInstanceUID, study.c_str(), series.c_str(), sop.c_str()));
      return kDataSetMismatch;
    }
    if (g_state->spool_full()) {
      if (!said_full_)
        g_state->log(fmt::format("{}@{}: instances refused: the spool is full (--max-spool-gb)",
                                 calling_ae_, host_));
      said_full_ = true;
      try {
        g_state->journal.refuse_instance(study.c_str(), series.c_str(), calling_ae_, unix_now());
      } catch (const std::exception& e) {
        g_state->log(fmt::format("cannot record {}: {}", sop.c_str(), e.what()));
      }
      return kOutOfResources;
    }
    const fs::path dir = fs::path(g_state->options.spool) / study.c_str() / series.c_str();
    std::error_code ec;
    fs::create_directories(dir, ec);
    const auto size = static_cast<long long>(fs::file_size(part, ec));
    fs::rename(part, dir / (std::string(sop.c_str()) + ".dcm"), ec);
    if (ec) {
      g_state->log(fmt::format("cannot store {} in {}: {}", sop.c_str(), dir.string(), ec.message()));
      return kOutOfResources;
    }
    try {
      if (g_state->journal.add_instance(study.c_str(), series.c_str(), sop.c_str(), calling_ae_,
                                        unix_now()))
        g_state->log(fmt::format("series {} (study {}): receiving from {}", series.c_str(),
                                 study.c_str(), calling_ae_));
    } catch (const std::exception& e) {
      g_state->log(fmt::format("cannot record {}: {}", sop.c_str(), e.what()));
      return kOutOfResources;
    }
    g_state->spool_bytes += size;
    ++stored_;
    bytes_ += size;
    return kStatusOk;
  }

  std::string calling_ae_, host_, refused_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool accepted_ = false, said_full_ = false;
  int stored_ = 0, rejected_ = 0;
  long long bytes_ = 0;
};

// DCMTK 3.6.7's pool (Debian 12's) starts a worker with OFThread::start(), which stores the new
// thread's id into the worker after pthread_create returns, and a worker deletes itself when its
// association ends (DcmBaseSCPPool::notifyThreadExit): an association refused at once can end
// before that store, which then writes into freed memory (where glibc keeps a free chunk's list
// link: a node in the tests once died with "malloc(): unsorted double linked list corrupted" after
// such an association). So a worker waits until its id is stored before it serves its association.
// (Later DCMTK keeps workers for reuse; the wait then ends at once.)
class StartedWorker : public DcmBaseSCPPool::DcmBaseSCPWorker {
 protected:
  explicit StartedWorker(DcmBaseSCPPool& pool) : DcmBaseSCPWorker(pool) {}
  void run() override {
    while (threadID() == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
    DcmBaseSCPWorker::run();
  }
};

void add_contexts(DcmSCPConfig& cfg) {
  OFList<OFString> plain;
  for (const char* x : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                        UID_BigEndianExplicitTransferSyntax})
    plain.push_back(x);
  OFList<OFString> images = plain;
  for (const char* x : {UID_RLELosslessTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                        UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax,
                        UID_JPEGProcess1TransferSyntax, UID_JPEG2000LosslessOnlyTransferSyntax,
                        UID_JPEG2000TransferSyntax, UID_JPEGLSLosslessTransferSyntax})
    images.push_back(x);
  cfg.addPresentationContext(UID_VerificationSOPClass, plain);
  cfg.addPresentationContext(UID_MRImageStorage, images);
  cfg.addPresentationContext(UID_EnhancedMRImageStorage, images);
}

std::unique_ptr<DcmTLSTransportLayer> make_tls(const TlsFiles& f) {
  auto tls = std::make_unique<DcmTLSTransportLayer>(NET_ACCEPTOR, nullptr, OFTrue);
  auto check = [](OFCondition c, const std::string& what) {
    if (c.bad()) throw std::runtime_error(what + ": " + c.text());
  };
  check(tls->setTLSProfile(TSP_Profile_BCP195), "TLS profile");
  check(tls->activateCipherSuites(), "TLS cipher suites");
  check(tls->setPrivateKeyFile(f.key.c_str(), DCF_Filetype_PEM), "--tls-key " + f.key);
  check(tls->setCertificateFile(f.cert.c_str(), DCF_Filetype_PEM), "--tls-cert " + f.cert);
  if (!tls->checkPrivateKeyMatchesCertificate())
    throw std::runtime_error("--tls-key " + f.key + " does not match --tls-cert " + f.cert);
  if (f.ca.empty()) throw std::runtime_error("--tls-ca: the CA that signs the clients' certificates is needed");
  check(tls->addTrustedCertificateFile(f.ca.c_str(), DCF_Filetype_PEM), "--tls-ca " + f.ca);
  tls->setCertificateVerification(DCV_requireCertificate);
  return tls;
}

// Throws when the port cannot be bound (in use, no permission), before DCMTK's pool tries.
void check_port(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  const int on = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = s >= 0 && ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  const int err = errno;
  if (s >= 0) ::close(s);
  if (!ok) throw std::runtime_error(fmt::format("cannot listen on port {}: {}", port, std::strerror(err)));
}

}  // namespace

long long spool_size(const std::string& spool) {
  long long total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(spool, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_regular_file(ec) && it->path().extension() == ".dcm")
      total += static_cast<long long>(it->file_size(ec));
  return total;
}

Receiver::Receiver(ReceiverOptions options, Journal& journal, LogFn log)
    : state_(new State{std::move(options), journal, std::move(log)}) {
  // DCMTK's own lines (one per DIMSE message) would drown the node's: errors only.
  OFLog::configure(OFLogger::ERROR_LOG_LEVEL);
  state_->spool_bytes = spool_size(state_->options.spool);
  if (state_->options.tls.enabled()) state_->tls = make_tls(state_->options.tls);
}

Receiver::~Receiver() = default;

void Receiver::run() {
  DcmSCPPool<StoreScp, DcmBaseSCPPool, StartedWorker> pool;
  DcmSCPConfig& cfg = pool.getConfig();
  cfg.setAETitle(state_->options.aet.c_str());
  cfg.setPort(static_cast<Uint16>(state_->options.port));
  cfg.setConnectionBlockingMode(DUL_NOBLOCK);
  cfg.setConnectionTimeout(1);  // the listen loop looks at stop() every second
  cfg.setACSETimeout(30);
  cfg.setDIMSETimeout(60);
  cfg.setHostLookupEnabled(OFFalse);
  if (state_->tls) cfg.setTransportLayer(state_->tls.get());
  add_contexts(cfg);
  check_port(state_->options.port);
  state_->log(fmt::format("listening as {} on port {}{}", state_->options.aet, state_->options.port,
                          state_->tls ? " (TLS)" : ""));
  pool.setMaxThreads(static_cast<Uint16>(state_->options.max_associations));
  g_state = state_.get();
  {
    std::lock_guard<std::mutex> lock(state_->pool_mutex);
    state_->pool = &pool;
    if (state_->stop_requested) return;
  }
  const OFCondition c = pool.listen();
  {
    std::lock_guard<std::mutex> lock(state_->pool_mutex);
    state_->pool = nullptr;
  }
  if (c.bad())
    throw std::runtime_error(fmt::format("cannot listen on port {}: {}", state_->options.port, c.text()));
}

void Receiver::stop() {
  std::lock_guard<std::mutex> lock(state_->pool_mutex);
  state_->stop_requested = true;
  if (state_->pool) state_->pool->stopAfterCurrentAssociations();
}

void Receiver::forget_bytes(long long bytes) { state_->spool_bytes -= bytes; }

}  // namespace spineparse::serve
