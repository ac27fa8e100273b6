#include <gtest/gtest.h>

#include "edan/error.hpp"
#include "edan/labels.hpp"

using edan::ClassSet;

TEST(Labels_Canonical, aliases) {
  EXPECT_EQ(edan::canonical_label("happiness"), "happy");
  EXPECT_EQ(edan::canonical_label("HA"), "happy");
  EXPECT_EQ(edan::canonical_label("Angry"), "anger");
  EXPECT_EQ(edan::canonical_label("sadness"), "sad");
  EXPECT_EQ(edan::canonical_label("AN"), "anger");
  EXPECT_EQ(edan::canonical_label("SU"), "surprise");
  EXPECT_EQ(edan::canonical_label("contempt"), "contempt");
  EXPECT_FALSE(edan::canonical_label("bored"));
}

TEST(Labels_Sets, orderAndSize) {
  EXPECT_EQ(edan::class_count(ClassSet::k7), 7);
  EXPECT_EQ(edan::class_count(ClassSet::k8), 8);
  EXPECT_EQ(edan::class_count(ClassSet::k3), 3);
  EXPECT_EQ(edan::class_count(ClassSet::k6), 6);
  EXPECT_EQ(edan::class_names(ClassSet::k8).back(), "contempt");
  EXPECT_EQ(edan::class_index(ClassSet::k7, "surprise"), 3);
  EXPECT_EQ(edan::class_index(ClassSet::k7, "contempt"), -1);
  EXPECT_THROW(edan::parse_class_set("5"), edan::UsageError);
}

TEST(Labels_Map, threeClass) {
  for (const char* neg : {"fear", "sad", "disgust", "anger"})
    EXPECT_EQ(edan::to_three_class(neg), "negative") << neg;
  EXPECT_EQ(edan::to_three_class("happy"), "positive");
  EXPECT_EQ(edan::to_three_class("contempt"), "positive");
  EXPECT_EQ(edan::to_three_class("neutral"), "neutral");
  EXPECT_FALSE(edan::to_three_class("surprise"));
  EXPECT_FALSE(edan::map_label("contempt", ClassSet::k7));
  EXPECT_FALSE(edan::map_label("neutral", ClassSet::k6));
  EXPECT_EQ(edan::map_label("anger", ClassSet::k3), "negative");
}
