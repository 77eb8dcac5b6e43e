// spineparse serve, the DICOM node, against DCMTK's storescu, echoscu and storescp as sender and
// receiver, and against Orthanc. Every process runs on loopback and is stopped by
// the test; every wait is bounded.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "journal.hpp"
#include "serve_util.hpp"
#include "sr_util.hpp"
#include "spineparse/files.hpp"

using namespace serve_test;
using spineparse::testing::TempDir;
using ::testing::HasSubstr;

namespace {

const std::string kStudy = "1.2.826.0.1.3680043.8.498.40";
std::string series_uid(int k) { return "1.2.826.0.1.3680043.8.498.40." + std::to_string(k); }

// A node on a free port over the folders of `d`; started by start().
struct Node {
  fs::path dir;
  int port = free_port();
  std::string extra;
  std::unique_ptr<Background> process;

  std::string log() const { return (dir / "serve.log").string(); }
  std::string log_text() const { return fs::exists(log()) ? spineparse::read_file(log()) : ""; }
  void start() {
    process = std::make_unique<Background>(
        std::string(SPINEPARSE_CLI) + " serve " + cli_test::graph("demo.json") +
            " --aet SPINEPARSE --port " + std::to_string(port) + " --spool " +
            (dir / "spool").string() + " --output " + (dir / "out").string() +
            " --idle 1 --threads 2 --set qc.fail_below=0 " + extra,
        log());
    ASSERT_TRUE(wait_until([&] { return echo("ECHOSCU") == 0; }, 60)) << log_text();
  }
  int echo(const std::string& aet) const {
    return cli_test::shell(dcmtk_tool("echoscu") + " -aet " + aet + " -aec SPINEPARSE 127.0.0.1 " +
                           std::to_string(port))
        .code;
  }
  cli_test::Result send(const fs::path& folder, const std::string& flags = "") const {
    return cli_test::shell(dcmtk_tool("storescu") + " " + flags + " -aec SPINEPARSE +sd +r 127.0.0.1 " +
                           std::to_string(port) + " " + folder.string());
  }
  std::string status() const {
    return cli_test::sp("serve --status --spool " + (dir / "spool").string()).output;
  }
};

// storescp as the destination, unique file names (a result sent twice is two files).
std::unique_ptr<Background> start_receiver(const fs::path& dir, int port) {
  fs::create_directories(dir / "received");
  return std::make_unique<Background>(dcmtk_tool("storescp") + " -aet DEST -uf -od " +
                                          (dir / "received").string() + " " + std::to_string(port),
                                      (dir / "storescp.log").string());
}

// The SEG among received files references the series; the SR's heights equal measurements.csv.
void expect_results_of(const fs::path& received, const fs::path& out, const std::string& series) {
  int segs = 0, srs = 0;
  for (const auto& e : fs::directory_iterator(received)) {
    DcmFileFormat f;
    ASSERT_TRUE(f.loadFile(e.path().c_str()).good()) << e.path();
    OFString modality, referenced;
    f.getDataset()->findAndGetOFString(DCM_Modality, modality);
    if (modality == "SEG") {
      ++segs;
      ASSERT_TRUE(f.getDataset()
                      ->findAndGetOFString(DCM_SeriesInstanceUID, referenced, 0, OFTrue)
                      .good());
      DcmItem* item = nullptr;
      ASSERT_TRUE(f.getDataset()->findAndGetSequenceItem(DCM_ReferencedSeriesSequence, item).good());
      item->findAndGetOFString(DCM_SeriesInstanceUID, referenced);
      EXPECT_EQ(referenced, series.c_str());
    } else if (modality == "SR") {
      ++srs;
      expect_sr_heights_as_in_csv(e.path().string(),
                                  (out / "measurements/measurements.csv").string(), series);
    }
  }
  EXPECT_EQ(segs, 1);
  EXPECT_EQ(srs, 1);
}

// Waits (bounded) for `files` results in `received`, then 3 s more: exactly `files` arrived,
// `segs` of them SEGs.
void expect_arrived_once(const fs::path& received, int files, int segs, const std::string& log) {
  ASSERT_TRUE(wait_until([&] { return count_files(received) >= files; }, 400)) << log;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(count_files(received), files);
  EXPECT_EQ(count_files(received, "SG."), segs);
}

}  // namespace

// A series sent by storescu comes back as one SEG and one SR at storescp; a malformed series
// fails with its reason while the node keeps serving; an AE title not allowed is refused;
// SIGTERM ends the node with 0.
TEST(Serve, ReceivesASeriesRunsItAndSendsItsResults) {
  if (!have_dcmtk_tools() || !has_networks()) GTEST_SKIP() << "needs dcmtk and the networks";
  TempDir d;
  write_series(fs::path(d.str()), (d / "in/good").string(), 8, kStudy, series_uid(1));
  write_series(fs::path(d.str()), (d / "in/bad").string(), 9, kStudy, series_uid(2));
  // One instance of the bad series says it has half its rows: its pixel data no longer fits.
  const auto first_bad = fs::directory_iterator(d / "in/bad")->path();
  ASSERT_EQ(cli_test::shell(dcmtk_tool("dcmodify") + " -nb -m '(0028,0010)=48' " + first_bad.string()).code, 0);
  const int dest_port = free_port();
  auto receiver = start_receiver(fs::path(d.str()), dest_port);
  Node node{fs::path(d.str())};
  node.extra = "--send-to DEST@127.0.0.1:" + std::to_string(dest_port) +
               " --allow STORESCU --allow ECHOSCU@127.0.0.1";
  node.start();
  EXPECT_NE(node.echo("INTRUDER"), 0);  // not in --allow
  // The node logs a refusal when the association ends, which may be just after echoscu exits.
  const std::string refused = "calling AE title 'INTRUDER' from 127.0.0.1 is not allowed";
  EXPECT_TRUE(wait_until([&] { return node.log_text().find(refused) != std::string::npos; }, 10))
      << node.log_text();
  auto sent = node.send(d / "in/bad");
  ASSERT_EQ(sent.code, 0) << sent.output << node.log_text();
  sent = node.send(d / "in/good");
  ASSERT_EQ(sent.code, 0) << sent.output << node.log_text();
  ASSERT_TRUE(wait_until([&] { return count_files(d / "received") >= 2; }, 240))
      << node.log_text();
  ASSERT_TRUE(wait_until([&] { return node.status().find("failed") != std::string::npos; }, 60))
      << node.log_text();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // nothing more arrives
  const fs::path out = d / "out" / kStudy / series_uid(1);
  expect_results_of(d / "received", out, series_uid(1));
  EXPECT_TRUE(fs::exists(out / "run.json"));
  EXPECT_TRUE(fs::exists(d / "spool" / kStudy / series_uid(1)));  // --keep all
  const std::string status = node.status();
  EXPECT_THAT(status, HasSubstr(series_uid(1)));
  EXPECT_THAT(status, ::testing::ContainsRegex(series_uid(1) + " +sent +14 .*2 sent, 0 to send"));
  EXPECT_THAT(status, ::testing::ContainsRegex(series_uid(2) + " +failed .*\\[read\\]"));
  const std::string log = node.log_text();
  EXPECT_THAT(log, HasSubstr("association from STORESCU@127.0.0.1: 14 instances received"));
  EXPECT_THAT(log, HasSubstr("series " + series_uid(1) + ": results sent"));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0) << node.log_text();
  receiver->signal(SIGTERM);
}

namespace {
bool log_has(const Node& n, const std::string& text) {
  return n.log_text().find(text) != std::string::npos;
}
}  // namespace

// kill -9 while receiving, while running and before sending, each followed by a restart on the
// same spool; the destination down while sending, then up: exactly one SEG and one SR arrive for
// each series.
TEST(Serve, AKilledNodePicksUpWhereItStoppedAndSendsEachResultOnce) {
  if (!have_dcmtk_tools() || !has_networks()) GTEST_SKIP() << "needs dcmtk and the networks";
  TempDir d;
  const fs::path root(d.str());
  // Series a larger than the others: its run takes about a second, in which the test kills it.
  write_series(root, (d / "in/a").string(), 8, kStudy, series_uid(1), "224 288");
  write_series(root, (d / "in/b").string(), 10, kStudy, series_uid(2));
  // Series b in two halves: the node is killed between them.
  fs::create_directories(d / "in/b1");
  fs::create_directories(d / "in/b2");
  const int a_count = count_files(d / "in/a"), b_count = count_files(d / "in/b");
  int k = 0;
  for (const auto& e : fs::directory_iterator(d / "in/b"))
    fs::rename(e.path(), d / (k++ % 2 ? "in/b2" : "in/b1") / e.path().filename());
  const int dest_port = free_port();
  Node node{root};
  node.extra = "--send-to DEST@127.0.0.1:" + std::to_string(dest_port) + " --retry-max 1";

  // While running: killed once the journal says series a runs (its run takes most of a second).
  node.start();
  ASSERT_EQ(node.send(d / "in/a").code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        spineparse::serve::Journal journal((d / "spool/journal.sqlite").string());
        const auto s = journal.series(series_uid(1));
        return s && s->state == "running";
      },
      60))
      << node.log_text();
  node.process->signal(SIGKILL);
  node.process->wait(10);
  EXPECT_THAT(node.status(), ::testing::ContainsRegex(series_uid(1) + " +running"));

  // Restarted with the destination down: the run is redone, its sends fail and wait.
  node.start();
  ASSERT_TRUE(wait_until([&] { return log_has(node, "its run was interrupted; it runs again"); }, 30));
  ASSERT_TRUE(wait_until([&] { return log_has(node, "failed (attempt 1)"); }, 120))
      << node.log_text();
  // While receiving: half of series b, then killed; before sending: series a's results wait.
  ASSERT_EQ(node.send(d / "in/b1").code, 0);
  node.process->signal(SIGKILL);
  node.process->wait(10);
  EXPECT_THAT(node.status(), ::testing::ContainsRegex(series_uid(1) + " +done .*0 sent, 2 to send"));
  EXPECT_THAT(node.status(), ::testing::ContainsRegex(series_uid(2) + " +receiving +" +
                                                      std::to_string((b_count + 1) / 2) + " "));

  node.start();
  ASSERT_EQ(node.send(d / "in/b2").code, 0);
  ASSERT_TRUE(wait_until(
      [&] { return log_has(node, series_uid(2) + ": " + std::to_string(b_count) + " instances ran"); },
      120))
      << node.log_text();
  // The destination comes up: every result arrives, once.
  auto receiver = start_receiver(root, dest_port);
  expect_arrived_once(d / "received", 4, 2, node.log_text());
  const std::string status = node.status();
  EXPECT_THAT(status, ::testing::ContainsRegex(series_uid(1) + " +sent +" + std::to_string(a_count) +
                                               " .*2 sent, 0 to send"));
  EXPECT_THAT(status, ::testing::ContainsRegex(series_uid(2) + " +sent +" + std::to_string(b_count) +
                                               " .*2 sent, 0 to send"));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0);
  receiver->signal(SIGTERM);
}

// 20 series from 4 storescu processes at once, --group study: every series runs once and its two
// results arrive once; a calling AE under --max-associations 8 is served.
TEST(Serve, TwentySeriesFromFourSendersAtOnceAreAllProcessedOnce) {
  if (!have_dcmtk_tools() || !has_networks()) GTEST_SKIP() << "needs dcmtk and the networks";
  TempDir d;
  const fs::path root(d.str());
  for (int k = 1; k <= 20; ++k)
    write_series(root, (d / ("in/sender" + std::to_string(k % 4) + "/s" + std::to_string(k))).string(),
                 8 + k % 3, kStudy + "." + std::to_string(k % 4), series_uid(100 + k));
  const int dest_port = free_port();
  auto receiver = start_receiver(root, dest_port);
  Node node{root};
  node.extra = "--send-to DEST@127.0.0.1:" + std::to_string(dest_port) + " --group study";
  node.start();
  std::vector<std::unique_ptr<Background>> senders;
  for (int s = 0; s < 4; ++s)
    senders.push_back(std::make_unique<Background>(
        dcmtk_tool("storescu") + " -aec SPINEPARSE +sd +r 127.0.0.1 " + std::to_string(node.port) +
            " " + (d / ("in/sender" + std::to_string(s))).string(),
        (d / ("sender" + std::to_string(s) + ".log")).string()));
  for (auto& s : senders) EXPECT_EQ(s->wait(120), 0);
  expect_arrived_once(d / "received", 40, 20, node.log_text());
  const std::string status = node.status();
  for (int k = 1; k <= 20; ++k)
    EXPECT_THAT(status, ::testing::ContainsRegex(series_uid(100 + k) + " +sent .*2 sent, 0 to send"));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0);
  receiver->signal(SIGTERM);
}

namespace {

// Orthanc (Debian's package) on loopback, from a configuration in `dir`, told where the node is.
struct Orthanc {
  int http = free_port(), dicom = free_port();
  std::unique_ptr<Background> process;
  Orthanc(const fs::path& dir, int node_port) {
    fs::create_directories(dir / "orthanc-db");
    nlohmann::json cfg = {{"Name", "spineparse-test"},
                          {"StorageDirectory", (dir / "orthanc-db").string()},
                          {"IndexDirectory", (dir / "orthanc-db").string()},
                          {"HttpPort", http},
                          {"DicomPort", dicom},
                          {"DicomAet", "ORTHANC"},
                          {"RemoteAccessAllowed", false},
                          {"AuthenticationEnabled", false},
                          {"DicomCheckCalledAet", false},
                          {"DicomModalities", {{"spineparse", {"SPINEPARSE", "127.0.0.1", node_port}}}}};
    std::ofstream(dir / "orthanc.json") << cfg.dump(2);
    process = std::make_unique<Background>("/usr/sbin/Orthanc " + (dir / "orthanc.json").string(),
                                           (dir / "orthanc.log").string());
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(http) + path;
  }
  // curl: the response body, or "" with a test failure when the request fails.
  std::string get(const std::string& path) const {
    return cli_test::shell("curl -sf " + url(path)).output;
  }
  std::string post(const std::string& path, const std::string& data_arg) const {
    return cli_test::shell("curl -sf -X POST " + data_arg + " " + url(path)).output;
  }
};

}  // namespace

// A PACS in the loop: a series uploaded to Orthanc over its REST API, which Orthanc C-STOREs to
// the node (/modalities/.../store); the node's SEG and SR arrive back in Orthanc, the SEG
// referencing the series and the SR holding the values of the node's measurements.csv.
TEST(Serve, OrthancSendsASeriesAndGetsItsSegmentationAndReportBack) {
  if (!have_dcmtk_tools() || !has_networks() || !fs::exists("/usr/sbin/Orthanc"))
    GTEST_SKIP() << "needs dcmtk, orthanc and the networks";
  TempDir d;
  const fs::path root(d.str());
  write_series(root, (d / "in/s").string(), 8, kStudy, series_uid(7));
  Node node{root};
  Orthanc pacs(root, node.port);
  ASSERT_TRUE(wait_until([&] { return !pacs.get("/system").empty(); }, 60))
      << spineparse::read_file((d / "orthanc.log").string());
  node.extra = "--send-to ORTHANC@127.0.0.1:" + std::to_string(pacs.dicom) +
               " --allow ORTHANC@127.0.0.1 --allow ECHOSCU";
  node.start();
  for (const auto& e : fs::directory_iterator(d / "in/s"))
    ASSERT_FALSE(pacs.post("/instances", "--data-binary @" + e.path().string()).empty());
  const auto found = nlohmann::json::parse(pacs.post("/tools/lookup", "-d " + series_uid(7)));
  ASSERT_EQ(found.size(), 1u);
  const std::string series_id = found[0]["ID"];
  ASSERT_FALSE(pacs.post("/modalities/spineparse/store", "-d " + series_id).empty())
      << node.log_text();
  const auto series_of = [&](const std::string& modality) {
    const std::string q = nlohmann::json{{"Level", "Series"}, {"Query", {{"Modality", modality}}}}.dump();
    return nlohmann::json::parse(pacs.post("/tools/find", "-d '" + q + "'"));
  };
  ASSERT_TRUE(wait_until([&] { return series_of("SEG").size() == 1 && series_of("SR").size() == 1; },
                         240))
      << node.log_text();
  fs::create_directories(d / "from-orthanc");
  for (const std::string m : {"SEG", "SR"}) {
    const auto instances =
        nlohmann::json::parse(pacs.get("/series/" + series_of(m)[0].get<std::string>() + "/instances"));
    ASSERT_EQ(instances.size(), 1u) << m;
    ASSERT_EQ(cli_test::shell("curl -sf -o " + (d / "from-orthanc" / m).string() + " " +
                              pacs.url("/instances/" + instances[0]["ID"].get<std::string>() + "/file"))
                  .code,
              0);
  }
  expect_results_of(d / "from-orthanc", d / "out" / kStudy / series_uid(7), series_uid(7));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0);
  pacs.process->signal(SIGTERM);
  pacs.process->wait(30);
}

namespace {

// A CA, a certificate it signs for `name` (name.key, name.pem) in dir.
void make_ca(const fs::path& dir) {
  ASSERT_EQ(cli_test::shell("cd " + dir.string() +
                            " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out "
                            "ca.pem -days 2 -subj /CN=spineparse-test-ca")
                .code,
            0);
}
void make_cert(const fs::path& dir, const std::string& name, bool signed_by_ca = true) {
  const std::string d = "cd " + dir.string() + " && ";
  if (!signed_by_ca) {
    ASSERT_EQ(cli_test::shell(d + "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + name +
                              ".key -out " + name + ".pem -days 2 -subj /CN=" + name)
                  .code,
              0);
    return;
  }
  ASSERT_EQ(cli_test::shell(d + "openssl req -newkey rsa:2048 -nodes -keyout " + name + ".key -out " +
                            name + ".csr -subj /CN=" + name + " && openssl x509 -req -in " + name +
                            ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -out " + name +
                            ".pem -days 2")
                .code,
            0);
}

}  // namespace

// --tls-key/--tls-cert/--tls-ca: a client whose certificate the CA signed is served, one with a
// certificate of its own or none is refused; the results go out over TLS too.
TEST(Serve, UnderTlsOnlyClientsWithATrustedCertificateAreServed) {
  if (!have_dcmtk_tools() || !has_networks() || !fs::exists("/usr/bin/openssl"))
    GTEST_SKIP() << "needs dcmtk, openssl and the networks";
  TempDir d;
  const fs::path root(d.str()), pki = root / "pki";
  fs::create_directories(pki);
  make_ca(pki);
  make_cert(pki, "node");
  make_cert(pki, "client");
  make_cert(pki, "dest");
  make_cert(pki, "stranger", false);
  write_series(root, (d / "in/s").string(), 8, kStudy, series_uid(9));
  const auto tls_of = [&](const std::string& who) {
    return " +tls " + (pki / (who + ".key")).string() + " " + (pki / (who + ".pem")).string() +
           " +cf " + (pki / "ca.pem").string() + " ";
  };
  const int dest_port = free_port();
  fs::create_directories(d / "received");
  Background receiver(dcmtk_tool("storescp") + tls_of("dest") + "-aet DEST -uf -od " +
                          (d / "received").string() + " " + std::to_string(dest_port),
                      (d / "storescp.log").string());
  Node node{root};
  node.extra = "--send-to DEST@127.0.0.1:" + std::to_string(dest_port) + " --tls-key " +
               (pki / "node.key").string() + " --tls-cert " + (pki / "node.pem").string() +
               " --tls-ca " + (pki / "ca.pem").string();
  const auto echo = [&](const std::string& tls) {
    return cli_test::shell(dcmtk_tool("echoscu") + tls + "-aec SPINEPARSE 127.0.0.1 " +
                           std::to_string(node.port))
        .code;
  };
  node.process = std::make_unique<Background>(
      std::string(SPINEPARSE_CLI) + " serve " + cli_test::graph("demo.json") + " --port " +
          std::to_string(node.port) + " --spool " + (root / "spool").string() + " --output " +
          (root / "out").string() + " --idle 1 --threads 2 --set qc.fail_below=0 " + node.extra,
      node.log());
  ASSERT_TRUE(wait_until([&] { return echo(tls_of("client")) == 0; }, 60)) << node.log_text();
  EXPECT_NE(echo(" +tls " + (pki / "stranger.key").string() + " " + (pki / "stranger.pem").string() +
                 " +cf " + (pki / "ca.pem").string() + " "),
            0);
  EXPECT_NE(echo(" "), 0);  // no TLS at all
  ASSERT_EQ(cli_test::shell(dcmtk_tool("storescu") + tls_of("client") +
                            "-aec SPINEPARSE +sd +r 127.0.0.1 " + std::to_string(node.port) + " " +
                            (d / "in/s").string())
                .code,
            0);
  // The files are complete once the node has its answers (storescp writes, then answers).
  ASSERT_TRUE(wait_until([&] { return log_has(node, "series " + series_uid(9) + ": results sent"); },
                         240))
      << node.log_text();
  ASSERT_EQ(count_files(d / "received"), 2);
  expect_results_of(d / "received", d / "out" / kStudy / series_uid(9), series_uid(9));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0);
  receiver.signal(SIGTERM);
}

// What the node does not take: an object other than MR (a CT image) is refused at association
// time; a full spool (--max-spool-gb) answers "out of resources" and refuses new associations;
// a port in use stops the node with the reason.
TEST(Serve, ObjectsItDoesNotTakeAndAFullSpoolAreRefused) {
  if (!have_dcmtk_tools() || !has_networks()) GTEST_SKIP() << "needs dcmtk and the networks";
  TempDir d;
  const fs::path root(d.str());
  write_series(root, (d / "in/s").string(), 8, kStudy, series_uid(11));
  fs::create_directories(d / "ct");
  const fs::path ct = d / "ct/ct.dcm";
  fs::copy_file(fs::directory_iterator(d / "in/s")->path(), ct);
  ASSERT_EQ(cli_test::shell(dcmtk_tool("dcmodify") + " -nb -m '(0008,0016)=1.2.840.10008.5.1.4.1.1.2' " +
                            ct.string())
                .code,
            0);
  Node node{root};
  node.extra = "--max-spool-gb 0.0001";  // 100 kB: a few instances
  node.start();
  EXPECT_NE(node.send(d / "ct", "-R").code, 0);  // -R: it proposes only what it sends
  EXPECT_TRUE(wait_until([&] { return log_has(node, "no presentation context it asked for is accepted"); }, 30))
      << node.log_text();
  node.send(d / "in/s");
  EXPECT_TRUE(wait_until([&] { return log_has(node, "instances refused: the spool is full"); }, 30))
      << node.log_text();
  // The association's summary is logged when the node has closed it, after storescu returns.
  EXPECT_TRUE(wait_until([&] { return log_has(node, ", 1 refused"); }, 30)) << node.log_text();
  EXPECT_NE(node.send(d / "in/s").code, 0);  // a new association: refused while full
  EXPECT_TRUE(wait_until([&] { return log_has(node, "refused: the spool is full (--max-spool-gb)"); }, 30))
      << node.log_text();
  EXPECT_FALSE(fs::exists(d / "spool" / "1.2.840.10008.5.1.4.1.1.2"));
  // The series it took part of fails when complete, and says why.
  EXPECT_TRUE(wait_until([&] { return log_has(node, "instances were refused while the spool was full"); }, 30))
      << node.log_text();
  EXPECT_THAT(node.status(), ::testing::ContainsRegex(series_uid(11) + " +failed +6 .*send the series again"));
  // A second node on the same port cannot listen, and says so.
  Node second{root / "second"};
  second.port = node.port;
  fs::create_directories(second.dir);
  Background b(std::string(SPINEPARSE_CLI) + " serve " + cli_test::graph("demo.json") + " --port " +
                   std::to_string(node.port) + " --spool " + (second.dir / "spool").string() +
                   " --output " + (second.dir / "out").string(),
               second.log());
  EXPECT_EQ(b.wait(60), 1);
  EXPECT_THAT(second.log_text(), HasSubstr("cannot listen on port " + std::to_string(node.port)));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0);
}

// An Enhanced MR object (one multi-frame file, RLE) is a series like a classic one; with two
// --send-to, both destinations get the SEG and the SR; --keep results deletes the received object
// once they are sent.
TEST(Serve, AnEnhancedMrObjectGoesToEveryDestinationAndIsDeletedOnceSent) {
  if (!have_dcmtk_tools() || !has_networks()) GTEST_SKIP() << "needs dcmtk and the networks";
  TempDir d;
  const fs::path root(d.str());
  const fs::path nii = root / "synth8";
  ASSERT_EQ(cli_test::sp("synth --cases 1 --seed 8 --size 96 128 --no-masks --out " + nii.string()).code, 0);
  const auto v = spineparse::io::read_image((nii / "original_mr/Case1.nii.gz").string());
  const std::string uid = series_uid(21);
  fs::create_directories(d / "in");
  spineparse::testing::EnhancedSpec spec{(d / "in/enhanced.dcm").string(), uid};
  spec.rle = true;
  spineparse::testing::write_enhanced_mr(*v.data, v.geometry, spec);
  const int port1 = free_port(), port2 = free_port();
  auto r1 = start_receiver(root / "dest1", port1);
  auto r2 = start_receiver(root / "dest2", port2);
  Node node{root};
  node.extra = "--send-to DEST@127.0.0.1:" + std::to_string(port1) + " --send-to DEST@127.0.0.1:" +
               std::to_string(port2) + " --keep results";
  node.start();
  ASSERT_EQ(node.send(d / "in", "-xr").code, 0);  // -xr: proposes RLE Lossless
  // Both destinations have complete files once the node logs the series' results as sent.
  ASSERT_TRUE(wait_until([&] { return log_has(node, "series " + uid + ": results sent"); }, 240))
      << node.log_text();
  for (const auto& dest : {root / "dest1/received", root / "dest2/received"})
    ASSERT_EQ(count_files(dest), 2) << node.log_text();
  const std::string study = uid + ".2";
  expect_results_of(root / "dest1/received", d / "out" / study / uid, uid);
  expect_results_of(root / "dest2/received", d / "out" / study / uid, uid);
  ASSERT_TRUE(wait_until([&] { return !fs::exists(d / "spool" / study / uid); }, 30));
  EXPECT_THAT(node.status(), ::testing::ContainsRegex(uid + " +sent +1 .*4 sent, 0 to send"));
  node.process->signal(SIGTERM);
  EXPECT_EQ(node.process->wait(60), 0);
}
