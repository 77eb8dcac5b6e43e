// Parameters declared once (ParamSet): the specs a description carries and the typed decoding of
// a node's resolved values, as validation and the stages see them.
#include <gmock/gmock.h>

#include <optional>

#include "spineparse/graph.hpp"
#include "spineparse/param_set.hpp"

using namespace spineparse;

namespace {

struct Base {
  std::string weights;
  bool flag = true;
};
struct Options : Base {
  std::int64_t height = 256;
  int cores = 0;
  double tolerance = 0.25;
  std::string mode = "auto";
  std::vector<std::string> cases;
  std::optional<std::int64_t> limit;
};

const ParamSet<Options>& options() {
  static const auto set = [] {
    ParamSet<Options> s;
    s.add(&Options::weights, "weights", "a file").required().existing("flag");
    s.add(&Options::flag, "flag", "a switch");
    s.add(&Options::height, "height", "rows").min(16);
    s.add(&Options::cores, "cores", "cores").range(0, 64);
    s.add(&Options::tolerance, "tolerance", "margin").max(10);
    s.add(&Options::mode, "mode", "how").one_of({"auto", "on", "off"});
    s.add(&Options::cases, "cases", "ids");
    s.add(&Options::limit, "limit", "no default");
    return s;
  }();
  return set;
}

const ParamSpec& spec(const std::string& name) {
  for (const auto& s : options().specs())
    if (s.name == name) return s;
  throw std::runtime_error("no " + name);
}

}  // namespace

TEST(ParamSet, SpecsTakeTypesAndDefaultsFromTheMembers) {
  ASSERT_EQ(options().specs().size(), 8u);
  EXPECT_EQ(options().specs()[0].name, "weights");  // declaration order
  EXPECT_EQ(spec("weights").type, ParamType::kPath);
  EXPECT_TRUE(spec("weights").required);
  EXPECT_FALSE(spec("weights").default_value.has_value());
  EXPECT_TRUE(spec("weights").must_exist);
  EXPECT_EQ(spec("weights").exists_unless, "flag");
  EXPECT_EQ(spec("flag").type, ParamType::kBool);
  EXPECT_EQ(std::get<bool>(*spec("flag").default_value), true);
  EXPECT_EQ(spec("height").type, ParamType::kInt);
  EXPECT_EQ(std::get<std::int64_t>(*spec("height").default_value), 256);
  EXPECT_EQ(*spec("height").min, 16.0);
  EXPECT_FALSE(spec("height").max.has_value());
  EXPECT_EQ(spec("cores").type, ParamType::kInt);
  EXPECT_EQ(*spec("cores").max, 64.0);
  EXPECT_EQ(spec("tolerance").type, ParamType::kFloat);
  EXPECT_EQ(std::get<double>(*spec("tolerance").default_value), 0.25);
  EXPECT_EQ(spec("mode").allowed, (std::vector<std::string>{"auto", "on", "off"}));
  EXPECT_EQ(spec("cases").type, ParamType::kStringList);
  EXPECT_EQ(spec("limit").type, ParamType::kInt);
  EXPECT_FALSE(spec("limit").default_value.has_value());
  EXPECT_FALSE(spec("limit").required);
  EXPECT_EQ(spec("height").help, "rows");
}

TEST(ParamSet, DecodesResolvedValuesIntoTheMembers) {
  std::vector<ConfigIssue> issues;
  StageDescription d;
  d.kind = "t.options";
  d.params = options().specs();
  const Params p = resolve_params(
      d, {"weights=/w", "height=512", "cores=3", "mode=off", "cases=A,B", "limit=7"}, &issues);
  ASSERT_TRUE(issues.empty()) << issues[0].to_string();
  const Options o = options().decode(p);
  EXPECT_EQ(o.weights, "/w");
  EXPECT_TRUE(o.flag);  // the default
  EXPECT_EQ(o.height, 512);
  EXPECT_EQ(o.cores, 3);
  EXPECT_EQ(o.tolerance, 0.25);
  EXPECT_EQ(o.mode, "off");
  EXPECT_EQ(o.cases, (std::vector<std::string>{"A", "B"}));
  ASSERT_TRUE(o.limit.has_value());
  EXPECT_EQ(*o.limit, 7);
  // Left out: an optional member stays empty.
  EXPECT_FALSE(options().decode(resolve_params(d, {"weights=/w"}, &issues)).limit.has_value());
  // The declared limits are validation's: below the minimum is refused.
  resolve_params(d, {"weights=/w", "height=8"}, &issues);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_THAT(issues[0].message, ::testing::HasSubstr("height"));
}

TEST(ParamSet, NamesMembersAndEncodesOptionsBackToParams) {
  EXPECT_EQ(options().name_of(&Options::height), "height");
  EXPECT_EQ(options().name_of(&Base::weights), "weights");  // a member of a base struct
  EXPECT_EQ(options().name_of(&Options::limit), "limit");
  struct Other : Options {
    int undeclared = 0;
  };
  ParamSet<Other> partial;
  partial.add(&Other::height, "height", "rows");
  EXPECT_THROW(partial.name_of(&Other::undeclared), std::logic_error);
  EXPECT_THROW(partial.name_of(&Options::cores), std::logic_error);

  Options o;
  o.weights = "/w";
  o.height = 64;
  o.cases = {"A"};
  Params p = options().encode(o);
  EXPECT_EQ(p.get_string("weights"), "/w");
  EXPECT_EQ(p.get_int("height"), 64);
  EXPECT_EQ(p.get_int("cores"), 0);
  EXPECT_EQ(p.get_string_list("cases"), (std::vector<std::string>{"A"}));
  EXPECT_FALSE(p.has("limit"));  // an empty optional is left out
  o.limit = 5;
  const Options back = options().decode(options().encode(o));
  EXPECT_EQ(back.height, 64);
  EXPECT_EQ(back.tolerance, 0.25);
  EXPECT_EQ(back.mode, "auto");
  ASSERT_TRUE(back.limit.has_value());
  EXPECT_EQ(*back.limit, 5);
}
