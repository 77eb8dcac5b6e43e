// The DICOM node's journal: series states, sends and their backoff, recovery after a crash.
#include <gtest/gtest.h>

#include "journal.hpp"
#include "test_util.hpp"

using spineparse::serve::Journal;
using spineparse::testing::TempDir;

TEST(Journal, ASeriesGoesFromReceivingToSentAndAnInstanceCountsOnce) {
  TempDir d;
  Journal j((d / "j.sqlite").string());
  EXPECT_TRUE(j.add_instance("1.2", "1.2.3", "1.2.3.1", "SCU", 100.0));
  EXPECT_FALSE(j.add_instance("1.2", "1.2.3", "1.2.3.2", "SCU", 101.0));
  EXPECT_FALSE(j.add_instance("1.2", "1.2.3", "1.2.3.2", "SCU", 102.0));  // sent twice
  EXPECT_EQ(j.series("1.2.3")->instances, 2);
  EXPECT_TRUE(j.complete_idle(104.0, 5.0, false).empty());  // 2 s since the last one
  ASSERT_EQ(j.complete_idle(107.0, 5.0, false).size(), 1u);
  const auto s = j.start_next();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, "running");
  EXPECT_FALSE(j.start_next());
  j.finish("1.2.3", 1.5, 110.0, {"seg.dcm", "sr.dcm"}, {"A@h:1", "B@h:2"});
  EXPECT_EQ(j.series("1.2.3")->state, "done");
  const auto due = j.due_sends(110.0);
  ASSERT_EQ(due.size(), 4u);
  for (std::size_t i = 0; i + 1 < due.size(); ++i) EXPECT_FALSE(j.send_succeeded(due[i].id));
  EXPECT_TRUE(j.send_succeeded(due.back().id));
  EXPECT_EQ(j.series("1.2.3")->state, "sent");
}

TEST(Journal, AFailedSendWaitsLongerEachTimeUpToTheMost) {
  TempDir d;
  Journal j((d / "j.sqlite").string());
  j.add_instance("1.2", "1.2.3", "1.2.3.1", "SCU", 0.0);
  j.complete_idle(10.0, 5.0, false);
  j.start_next();
  j.finish("1.2.3", 1.0, 10.0, {"seg.dcm"}, {"A@h:1"});
  auto id = j.due_sends(10.0).at(0).id;
  j.send_failed(id, "refused", 10.0, 5.0);  // attempt 1: 2 s
  EXPECT_TRUE(j.due_sends(11.9).empty());
  EXPECT_EQ(j.due_sends(12.0).size(), 1u);
  j.send_failed(id, "refused", 12.0, 5.0);  // 4 s
  EXPECT_TRUE(j.due_sends(15.9).empty());
  j.send_failed(id, "refused", 16.0, 5.0);  // 8 s, at most 5
  EXPECT_EQ(j.due_sends(21.0).size(), 1u);
  EXPECT_EQ(j.due_sends(21.0)[0].last_error, "refused");
  EXPECT_EQ(j.pending_sends(), 1u);
}

TEST(Journal, ARestartRunsAgainWhatWasRunningAndALateInstanceRunsTheSeriesAgain) {
  TempDir d;
  const std::string path = (d / "j.sqlite").string();
  {
    Journal j(path);
    j.add_instance("1.2", "1.2.3", "1.2.3.1", "SCU", 0.0);
    j.complete_idle(10.0, 5.0, false);
    j.start_next();
  }  // the process dies while it runs
  Journal j(path);
  EXPECT_EQ(j.recover(), std::vector<std::string>{"1.2.3"});
  EXPECT_EQ(j.series("1.2.3")->state, "complete");
  j.start_next();
  // An instance arrives while it runs: its results are not sent, it runs again later.
  EXPECT_TRUE(j.add_instance("1.2", "1.2.3", "1.2.3.2", "SCU", 20.0));
  j.finish("1.2.3", 1.0, 21.0, {"seg.dcm"}, {"A@h:1"});
  EXPECT_EQ(j.series("1.2.3")->state, "receiving");
  EXPECT_EQ(j.pending_sends(), 0u);
  // Study grouping: a series waits while another series of its study still receives.
  j.add_instance("1.2", "1.2.4", "1.2.4.1", "SCU", 24.0);
  EXPECT_TRUE(j.complete_idle(27.0, 5.0, true).empty());
  EXPECT_EQ(j.complete_idle(29.0, 5.0, true).size(), 2u);
  // Refused instances: the series fails when complete, with the reason.
  j.refuse_instance("1.2", "1.2.5", "SCU", 30.0);
  const auto failed = j.complete_idle(40.0, 5.0, false);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].state, "failed");
  EXPECT_NE(failed[0].reason.find("spool was full"), std::string::npos);
  // A series the graph's reader passes by is skipped, not failed.
  j.add_instance("1.2", "1.2.6", "1.2.6.1", "SCU", 50.0);
  j.complete_idle(60.0, 5.0, false);
  ASSERT_EQ(j.start_next()->series_uid, "1.2.3");  // the oldest complete one first
  ASSERT_EQ(j.start_next()->series_uid, "1.2.4");
  ASSERT_EQ(j.start_next()->series_uid, "1.2.6");
  j.fail("1.2.6", "a localizer", 0.1, 61.0, "skipped");
  EXPECT_EQ(j.series("1.2.6")->state, "skipped");
  EXPECT_EQ(j.series("1.2.6")->reason, "a localizer");
}
