// spineparse serve: the DICOM node (tools/serve), and serve --status
#include <fmt/core.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "node.hpp"
#include "sender.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {
namespace {

struct ServeArgs {
  GraphArgs graph;
  serve::NodeOptions node;
  std::string group = "series";
  double max_spool_gb = 0;
  bool status = false;
};

// The options that make no node: a message, or empty.
std::string check_args(const ServeArgs& a) {
  if (a.node.receiver.spool.empty()) return "--spool is required";
  if (a.status) return "";
  if (a.graph.graph.empty()) return "the graph is required (spineparse serve GRAPH ...)";
  if (a.node.output.empty()) return "--output is required";
  if (a.node.receiver.aet.empty() || a.node.receiver.aet.size() > 16)
    return "--aet: an AE title has 1 to 16 characters";
  for (const auto& d : a.node.send_to) {
    std::string why;
    if (!serve::parse_destination(d, &why)) return "--send-to: " + why;
  }
  const auto& t = a.node.receiver.tls;
  if ((t.key.empty() != t.cert.empty()) || (!t.ca.empty() && t.cert.empty()))
    return "--tls-key, --tls-cert and --tls-ca go together";
  return "";
}

}  // namespace

void add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* sub = app.add_subcommand(
      "serve",
      "A DICOM node: receive MR series by C-STORE, run the graph on each complete series and send "
      "its DICOM-SEG and SR on (docs/dicom-node.md)");
  sub->add_option("graph", a->graph.graph, "graph file (JSON)");
  sub->add_option("--set", a->graph.sets, "override a parameter: NODE.PARAM=VALUE (repeatable)");
  sub->add_option("--plugin-dir", a->graph.plugin_dirs, "extra folder to load plugins from");
  sub->add_option("--device", a->graph.device, "device of every network node");
  auto& n = a->node;
  sub->add_option("--aet", n.receiver.aet, "this node's AE title (the called AE title)")
      ->capture_default_str();
  sub->add_option("--port", n.receiver.port, "TCP port to listen on")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  sub->add_option("--spool", n.receiver.spool,
                  "folder of received instances and the journal (SPOOL/<StudyUID>/<SeriesUID>/)");
  sub->add_option("--output", n.output, "results: OUTPUT/<StudyUID>/<SeriesUID>/");
  sub->add_option("--send-to", n.send_to,
                  "AET@HOST:PORT to C-STORE each series' DICOM-SEG and SR to (repeatable)");
  sub->add_option("--idle", n.idle_s, "seconds without an instance after which a series is complete")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--group", a->group, "series: each series on its own; study: wait for the study")
      ->capture_default_str()
      ->check(CLI::IsMember({"series", "study"}));
  sub->add_option("--allow", n.receiver.allow,
                  "accept only this calling AE title, AET or AET@HOST (repeatable; default: any)");
  sub->add_option("--max-associations", n.receiver.max_associations,
                  "associations served at once (more are refused)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  sub->add_option("--max-spool-gb", a->max_spool_gb,
                  "refuse new instances while the spool holds this much (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--keep", n.keep,
                  "all: keep received instances; results: delete a series' instances once its "
                  "results are sent")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "results"}));
  sub->add_option("--retry-max", n.max_backoff_s,
                  "seconds: a failed send is retried after 2, 4, 8 ... seconds, at most this")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--threads", n.threads, "cores the runs share (0: all cores)");
  sub->add_option("--parallel", n.parallel,
                  "series run at once, each through its own run of the graph on threads/parallel "
                  "cores")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  sub->add_option("--tls-key", n.receiver.tls.key, "TLS: this node's private key (PEM)");
  sub->add_option("--tls-cert", n.receiver.tls.cert, "TLS: this node's certificate (PEM)");
  sub->add_option("--tls-ca", n.receiver.tls.ca,
                  "TLS: the CA certificate peers' certificates must be signed by (PEM)");
  sub->add_flag("--status", a->status, "print the spool's journal (series, states, sends) and exit");
  sub->callback([a] {
    if (const auto why = check_args(*a); !why.empty()) {
      std::fprintf(stderr, "serve: %s\n", why.c_str());
      return set_exit_code(2);
    }
    if (a->status) return set_exit_code(serve::print_status(a->node.receiver.spool));
    a->node.by_study = a->group == "study";
    a->node.receiver.max_spool_bytes = a->max_spool_gb * 1e9;
    Registry registry;
    auto graph = load_graph_args(a->graph, registry);
    if (!graph) return set_exit_code(2);
    StopSignals handlers(
        "\nstopping: no new association is accepted; the series running finish and their "
        "results are sent (again to stop at once)\n");
    const int code = serve::serve(*graph, registry, a->node, g_stop);
    set_exit_code(code);
  });
}

}  // namespace spineparse::tools::cli
