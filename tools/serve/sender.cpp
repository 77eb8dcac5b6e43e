#include "sender.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <fmt/core.h>

#include <charconv>
#include <map>
#include <memory>

namespace spineparse::serve {

std::optional<Destination> parse_destination(const std::string& text, std::string* why) {
  const auto at = text.find('@');
  const auto colon = text.rfind(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at || at == 0 ||
      colon == at + 1) {
    *why = "'" + text + "' is not AET@HOST:PORT";
    return std::nullopt;
  }
  Destination d{text.substr(0, at), text.substr(at + 1, colon - at - 1), 0, text};
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  const auto [end, err] = std::from_chars(first, last, d.port);
  if (err != std::errc() || end != last || d.port < 1 || d.port > 65535) {
    *why = "'" + text + "': the port is not a number from 1 to 65535";
    return std::nullopt;
  }
  if (d.aet.size() > 16) {
    *why = "'" + text + "': an AE title has at most 16 characters";
    return std::nullopt;
  }
  return d;
}

namespace {

// DcmSCU with its TLS setter (protected in DCMTK 3.6.7) reachable.
class Scu : public DcmSCU {
 public:
  using DcmSCU::useSecureConnection;
};

std::string sop_class_of(const std::string& file, std::string* why) {
  DcmFileFormat ff;
  if (ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                          ERM_autoDetect, DCM_SOPInstanceUID)
          .bad()) {
    *why = file + ": cannot read it";
    return "";
  }
  OFString sop_class;
  ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, sop_class);
  if (sop_class.empty()) ff.getDataset()->findAndGetOFString(DCM_SOPClassUID, sop_class);
  if (sop_class.empty()) *why = file + ": no SOP class";
  return sop_class.c_str();
}

}  // namespace

std::vector<std::string> send_files(const std::string& our_aet, const Destination& to,
                                    const std::vector<std::string>& files, const TlsFiles& tls) {
  std::vector<std::string> result(files.size());
  std::vector<std::string> classes(files.size());
  std::unique_ptr<DcmTLSTransportLayer> layer;  // outlives the SCU, whose network uses it
  Scu scu;
  scu.setAETitle(our_aet.c_str());
  scu.setPeerAETitle(to.aet.c_str());
  scu.setPeerHostName(to.host.c_str());
  scu.setPeerPort(static_cast<Uint16>(to.port));
  scu.setConnectionTimeout(10);
  scu.setACSETimeout(30);
  scu.setDIMSETimeout(60);
  OFList<OFString> xfers;
  xfers.push_back(UID_LittleEndianExplicitTransferSyntax);
  xfers.push_back(UID_LittleEndianImplicitTransferSyntax);
  std::map<std::string, bool> added;
  for (std::size_t i = 0; i < files.size(); ++i) {
    classes[i] = sop_class_of(files[i], &result[i]);
    if (!classes[i].empty() && !added[classes[i]]) {
      scu.addPresentationContext(classes[i].c_str(), xfers);
      added[classes[i]] = true;
    }
  }
  if (added.empty()) return result;
  auto fail_all = [&](const std::string& why) {
    for (auto& r : result)
      if (r.empty()) r = why;
    return result;
  };
  OFCondition c = scu.initNetwork();
  if (c.bad()) return fail_all(fmt::format("no network for {}: {}", to.text, c.text()));
  if (tls.enabled()) {  // after initNetwork: the layer goes on its network
    layer = std::make_unique<DcmTLSTransportLayer>(NET_REQUESTOR, nullptr, OFTrue);
    if (layer->setTLSProfile(TSP_Profile_BCP195).bad() || layer->activateCipherSuites().bad() ||
        layer->setPrivateKeyFile(tls.key.c_str(), DCF_Filetype_PEM).bad() ||
        layer->setCertificateFile(tls.cert.c_str(), DCF_Filetype_PEM).bad() ||
        (!tls.ca.empty() && layer->addTrustedCertificateFile(tls.ca.c_str(), DCF_Filetype_PEM).bad()))
      return fail_all("the TLS files do not load");
    layer->setCertificateVerification(DCV_requireCertificate);
    if (scu.useSecureConnection(layer.get()).bad()) return fail_all("TLS cannot be set up");
  }
  c = scu.negotiateAssociation();
  if (c.bad()) return fail_all(fmt::format("no association with {}: {}", to.text, c.text()));
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (classes[i].empty()) continue;
    const T_ASC_PresentationContextID id = scu.findPresentationContextID(classes[i].c_str(), "");
    if (id == 0) {
      result[i] = fmt::format("{} does not accept SOP class {}", to.text, classes[i]);
      continue;
    }
    Uint16 status = 0;
    c = scu.sendSTORERequest(id, files[i].c_str(), nullptr, status);
    if (c.bad())
      result[i] = fmt::format("C-STORE to {} failed: {}", to.text, c.text());
    else if (status != 0x0000 && (status & 0xF000) != 0xB000)
      result[i] = fmt::format("{} answered status 0x{:04X}", to.text, status);
  }
  scu.releaseAssociation();
  return result;
}

}  // namespace spineparse::serve
