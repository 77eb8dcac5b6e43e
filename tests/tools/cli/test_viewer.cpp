// The QC report in a real browser (headless Chromium, software WebGL): the report of a small cohort
// and each case's viewer page open from file:// with no network; the viewer draws the labels in
// the palette where they are, its slice and label controls change the picture, there is no
// console error and no request leaves the machine; without WebGL the static picture stands in.
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_util.hpp"
#include "png_read.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using spineparse::testing::Rgb;
using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

constexpr const char* kChromium = "/usr/bin/chromium";

// The palette of the labels (overlay.cpp), 1..19.
const std::vector<std::array<int, 3>> kPalette = {
    {230, 25, 75},   {60, 180, 75},   {255, 225, 25}, {0, 130, 200},   {245, 130, 48},
    {145, 30, 180},  {70, 240, 240},  {240, 50, 230}, {210, 245, 60},  {250, 190, 212},
    {0, 128, 128},   {220, 190, 255}, {170, 110, 40}, {255, 250, 200}, {128, 0, 0},
    {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128}};

// Index into kPalette of a pixel's colour (within 3 per channel), or -1.
int palette_index(const unsigned char* p) {
  for (std::size_t i = 0; i < kPalette.size(); ++i)
    if (std::abs(p[0] - kPalette[i][0]) <= 3 && std::abs(p[1] - kPalette[i][1]) <= 3 &&
        std::abs(p[2] - kPalette[i][2]) <= 3)
      return static_cast<int>(i);
  return -1;
}
bool grey(const unsigned char* p) {
  return std::abs(p[0] - p[1]) <= 2 && std::abs(p[1] - p[2]) <= 2;
}

// One headless Chromium: software WebGL (or none), every host name unresolvable (nothing can
// leave the machine), the console on stderr, the network log in netlog.json.
struct Browser {
  TempDir dir;
  bool webgl = true;
  std::string run(const std::string& url, const std::string& what, const std::string& extra = "") {
    static int n = 0;
    const std::string profile = (dir / ("profile" + std::to_string(++n))).string();
    return shell("timeout 120 " + std::string(kChromium) + " --headless --no-sandbox" +
                 (webgl ? " --use-angle=swiftshader --enable-unsafe-swiftshader" : " --disable-webgl") +
                 " --no-first-run --disable-background-networking --disable-component-update"
                 " --disable-sync --host-resolver-rules='MAP * ~NOTFOUND'"
                 " --enable-logging=stderr --v=0 --virtual-time-budget=600000"
                 " --log-net-log=" + (dir / "netlog.json").string() +
                 " --user-data-dir=" + profile + " " + extra + " " + what + " '" + url + "'")
        .output;
  }
  std::string dom(const std::string& url) { return run(url, "--dump-dom"); }
  // The page's DOM once its viewer has drawn or given up: on a loaded machine the GPU process
  // (software WebGL) can fall behind Chromium's virtual clock, so an undecided page is tried
  // again, up to three times.
  std::string settled_dom(const std::string& url) {
    std::string d;
    for (int attempt = 0; attempt < 3; ++attempt) {
      d = dom(url);
      if (d.find("data-viewer-ready=\"") != std::string::npos ||
          d.find("data-viewer-fallback=\"") != std::string::npos)
        break;
    }
    return d;
  }
  Rgb screenshot(const std::string& url, int w = 900, int h = 800) {
    const std::string png = (dir / "shot.png").string();
    fs::remove(png);
    log = run(url, "--window-size=" + std::to_string(w) + "," + std::to_string(h) +
                       " --screenshot=" + png);
    return spineparse::testing::read_png(spineparse::read_file(png));
  }
  // The last run's requests for anything but a file: or data: URL, less the browser's own (those
  // its network log marks with the initiator "not an origin").
  std::vector<std::string> remote_requests() {
    const auto log = nlohmann::json::parse(spineparse::read_file((dir / "netlog.json").string()));
    std::set<std::string> urls, browsers;
    for (const auto& e : log["events"]) {
      if (!e.contains("params") || !e["params"].contains("url")) continue;
      const std::string url = e["params"]["url"].get<std::string>();
      if (url.rfind("file:", 0) == 0 || url.rfind("data:", 0) == 0) continue;
      urls.insert(url);
      if (e["params"].value("initiator", "") == "not an origin") browsers.insert(url);
    }
    std::vector<std::string> out;
    for (const auto& u : urls)
      if (!browsers.count(u)) out.push_back(u);
    return out;
  }
  std::string log;
};

// Console errors in Chromium's stderr (its own messages about D-Bus and the like are not).
std::vector<std::string> console_errors(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find("CONSOLE") != std::string::npos &&
        (line.find(":ERROR:") != std::string::npos || line.find("Uncaught") != std::string::npos))
      out.push_back(line);
  return out;
}

// A small cohort run through the demo graph: report.html and qc/<case>.html.
struct Reported {
  TempDir d;
  std::string out;
  Reported() {
    const std::string cohort = (d / "cohort").string();
    out = (d / "out").string();
    EXPECT_EQ(sp("synth --cases 2 --size 200 240 --seed 31 --out " + cohort).code, 0);
    const auto r = sp("run " + graph("demo.json") + " --input " + cohort + " --output " + out +
                      " --progress none");
    EXPECT_EQ(r.code, 0) << r.output;
  }
};

}  // namespace

TEST(Viewer, EachCaseDrawsItsLabelsInThePaletteFromDiskWithNoNetwork) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(kChromium)) GTEST_SKIP() << "chromium is not installed (scripts/setup --test)";
  Reported rep;
  const std::string page = "file://" + rep.out + "/qc/Case1.html";
  ASSERT_TRUE(fs::exists(rep.out + "/qc/niivue.umd.js"))
      << "the viewer is not installed (scripts/setup installs it into viewer/)";
  Browser b;
  // It draws: the marker carries the case id.
  const std::string dom = b.settled_dom(page);
  EXPECT_THAT(dom, HasSubstr("data-viewer-ready=\"Case1\"")) << dom.substr(0, 2000);
  EXPECT_EQ(b.remote_requests(), std::vector<std::string>{});

  // Labels fully opaque, then hidden, on the same slice: the palette's colours appear, for
  // several structures, exactly where the picture without labels is grey MR.
  const Rgb on = b.screenshot(page + "#opacity=1");
  EXPECT_EQ(console_errors(b.log), std::vector<std::string>{});
  const Rgb off = b.screenshot(page + "#labels=0");
  ASSERT_EQ(on.w, off.w);
  // Overlay pixels: a palette colour in `on` that `off` does not show (the legend's swatches
  // are in both pictures).
  int coloured = 0, over_grey = 0, off_coloured = 0;
  std::set<int> structures;
  for (int y = 0; y < on.h; ++y)
    for (int x = 0; x < on.w; ++x) {
      const bool same = std::equal(on.at(x, y), on.at(x, y) + 3, off.at(x, y));
      const int i = palette_index(on.at(x, y));
      if (i >= 0 && !grey(on.at(x, y)) && !same) {
        ++coloured;
        structures.insert(i);
        over_grey += grey(off.at(x, y));
      }
      off_coloured += palette_index(off.at(x, y)) >= 0 && !grey(off.at(x, y)) && !same;
    }
  EXPECT_GT(coloured, 2000);
  EXPECT_GE(structures.size(), 8u);
  EXPECT_GT(over_grey, coloured * 95 / 100);
  EXPECT_LT(off_coloured, coloured / 100);

  // The slice slider's position changes the picture.
  const Rgb a = b.screenshot(page + "#opacity=1&slice=0.5"), c = b.screenshot(page + "#opacity=1&slice=0.15");
  std::int64_t differ = 0;
  for (std::size_t i = 0; i < a.px.size(); i += 3) differ += a.px[i] != c.px[i];
  EXPECT_GT(differ, static_cast<std::int64_t>(a.px.size() / 3 / 50));

  // The measurements' layer: endplates in yellow over the MR, gone when it is switched off.
  // (Thin lines are filtered with the MR at their edges: yellow is any strong red-green with
  // little blue; the legend's swatches are above the canvas.)
  auto yellow = [](const Rgb& p) {
    int n = 0;
    for (int y = 120; y < p.h; ++y)
      for (int x = 0; x < p.w; ++x) {
        const unsigned char* c = p.at(x, y);
        n += c[0] > 150 && c[1] > 130 && c[2] < 80 && c[0] > c[2] + 100;
      }
    return n;
  };
  const int with_lines = yellow(b.screenshot(page + "#labels=0"));
  EXPECT_GT(with_lines, 150);
  EXPECT_LT(yellow(b.screenshot(page + "#labels=0&lines=0")), with_lines / 20);

  // Other planes draw too, and the difference view shows missed/spurious voxels.
  EXPECT_THAT(b.settled_dom(page + "#plane=axial"), HasSubstr("data-viewer-ready=\"Case1\""));
  EXPECT_THAT(b.settled_dom(page + "#diff=1"), HasSubstr("data-viewer-ready=\"Case1\""));
  EXPECT_EQ(b.remote_requests(), std::vector<std::string>{});
}

TEST(Viewer, WithoutWebGlThePageShowsTheStaticPicture) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(kChromium)) GTEST_SKIP() << "chromium is not installed (scripts/setup --test)";
  Reported rep;
  Browser b;
  b.webgl = false;
  const std::string dom = b.settled_dom("file://" + rep.out + "/qc/Case2.html");
  EXPECT_THAT(dom, HasSubstr("data-viewer-fallback"));
  EXPECT_THAT(dom, HasSubstr("src=\"Case2.png\""));
  EXPECT_THAT(dom, ::testing::Not(HasSubstr("data-viewer-ready=\"")));
}

TEST(Viewer, TheReportListsCasesFirstSummaryThenOpensACaseWithItsViewer) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(kChromium)) GTEST_SKIP() << "chromium is not installed (scripts/setup --test)";
  Reported rep;
  Browser b;
  const std::string dom = b.dom("file://" + rep.out + "/report.html#case=Case2");
  EXPECT_EQ(console_errors(b.run("file://" + rep.out + "/report.html", "--dump-dom")),
            std::vector<std::string>{});
  // Summary, one timing chart, the case table with a row per case; stage seconds not per row.
  EXPECT_LT(dom.find("id=\"summary\""), dom.find("id=\"cases\""));
  EXPECT_THAT(dom, HasSubstr("id=\"timing-chart\""));
  EXPECT_THAT(dom, HasSubstr("2 of 2 cases"));
  EXPECT_THAT(dom, ::testing::Not(HasSubstr("<pre>coarse")));
  // Quality control: the counts in the summary, the review list before the rest, a QC column,
  // and the opened case's confidence per structure.
  EXPECT_THAT(dom, ::testing::ContainsRegex("quality control</b><span>[0-9] pass, [0-9] review, "
                                            "[0-9] fail \\(qc/review.csv\\)"));
  EXPECT_LT(dom.find("To review ("), dom.find("id=\"cases\""));
  EXPECT_LT(dom.find("id=\"review\""), dom.find("id=\"timing\""));
  EXPECT_THAT(dom, HasSubstr("<th>QC</th>"));
  EXPECT_THAT(dom, HasSubstr("id=\"qc-Case2\""));
  EXPECT_THAT(dom, HasSubstr("<th>confidence</th>"));
  // The opened case: its pictures, measurements and viewer (an iframe of its page).
  EXPECT_THAT(dom, HasSubstr("<iframe class=\"viewer\" src=\"qc/Case2.html\""));
  EXPECT_THAT(dom, HasSubstr("id=\"measures-Case2\""));
  EXPECT_THAT(dom, ::testing::Not(HasSubstr("qc/Case1.html\" title")));  // closed: not built
  EXPECT_EQ(b.remote_requests(), std::vector<std::string>{});
  // The check sees a page that does reach out.
  const std::string leaky = (b.dir / "leaky.html").string();
  spineparse::write_file_atomic(
      leaky, "<script>fetch('https://cdn.example.org/viewer.js').catch(() => {});</script>");
  b.dom("file://" + leaky);
  EXPECT_EQ(b.remote_requests(), std::vector<std::string>{"https://cdn.example.org/viewer.js"});
}
