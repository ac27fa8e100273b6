#pragma once
// Emotion labels: canonical names, aliases, and the 7/8/3/6-class sets.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edan {

// Canonical labels, in this order for the 8-class set:
//   neutral happy sad surprise fear disgust anger contempt
// 3-class: negative positive neutral.
enum class ClassSet { k7, k8, k3, k6 };

// The label names of a class set, in model output order.
//   k7: neutral happy sad surprise fear disgust anger
//   k8: k7 + contempt
//   k3: negative positive neutral
//   k6: happy sad surprise fear disgust anger (the six basic emotions)
const std::vector<std::string>& class_names(ClassSet set);

// Parses "7", "8", "3", "6". Throws UsageError otherwise.
ClassSet parse_class_set(std::string_view s);
int class_count(ClassSet set);

// Normalises a label or alias (case-insensitive: happiness, HA, angry,
// sadness, AN, SU, FE, DI, NE, CO, ...; also the 3-class names) to its
// canonical name. nullopt when unknown.
std::optional<std::string> canonical_label(std::string_view name);

// Maps a canonical 8-class label to the 3-class set: fear, sad, disgust,
// anger -> negative; happy, contempt -> positive; neutral -> neutral;
// surprise -> nullopt (dropped). 3-class names map to themselves.
std::optional<std::string> to_three_class(std::string_view canonical);

// Maps a canonical label into `set`: identity when the label is a member,
// the 3-class mapping for k3, nullopt when the label has no place in the set
// (e.g. contempt in k7, neutral in k6, surprise in k3).
std::optional<std::string> map_label(std::string_view canonical, ClassSet set);

// Index of a label in class_names(set), or -1.
int class_index(ClassSet set, std::string_view canonical);

}  // namespace edan
