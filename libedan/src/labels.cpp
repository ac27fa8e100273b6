#include "edan/labels.hpp"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "edan/error.hpp"

namespace edan {

const std::vector<std::string>& class_names(ClassSet set) {
  static const std::vector<std::string> k7{"neutral", "happy",   "sad",  "surprise",
                                           "fear",    "disgust", "anger"};
  static const std::vector<std::string> k8{"neutral", "happy", "sad",   "surprise",
                                           "fear",    "disgust", "anger", "contempt"};
  static const std::vector<std::string> k3{"negative", "positive", "neutral"};
  static const std::vector<std::string> k6{"happy", "sad", "surprise", "fear", "disgust", "anger"};
  switch (set) {
    case ClassSet::k7: return k7;
    case ClassSet::k8: return k8;
    case ClassSet::k3: return k3;
    case ClassSet::k6: return k6;
  }
  return k7;
}

ClassSet parse_class_set(std::string_view s) {
  if (s == "7") return ClassSet::k7;
  if (s == "8") return ClassSet::k8;
  if (s == "3") return ClassSet::k3;
  if (s == "6") return ClassSet::k6;
  throw UsageError("unknown class set '" + std::string(s) + "' (expected 7, 8, 6 or 3)");
}

int class_count(ClassSet set) { return static_cast<int>(class_names(set).size()); }

std::optional<std::string> canonical_label(std::string_view name) {
  static const std::unordered_map<std::string, std::string> aliases{
      {"neutral", "neutral"},   {"ne", "neutral"},        {"neu", "neutral"},
      {"happy", "happy"},       {"happiness", "happy"},   {"ha", "happy"},
      {"hap", "happy"},         {"joy", "happy"},         {"sad", "sad"},
      {"sadness", "sad"},       {"sa", "sad"},            {"surprise", "surprise"},
      {"surprised", "surprise"}, {"su", "surprise"},      {"sur", "surprise"},
      {"fear", "fear"},         {"fearful", "fear"},      {"afraid", "fear"},
      {"fe", "fear"},           {"disgust", "disgust"},   {"disgusted", "disgust"},
      {"di", "disgust"},        {"dis", "disgust"},       {"anger", "anger"},
      {"angry", "anger"},       {"an", "anger"},          {"ang", "anger"},
      {"contempt", "contempt"}, {"co", "contempt"},       {"con", "contempt"},
      {"negative", "negative"}, {"positive", "positive"},
  };
  std::string key(name);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto it = aliases.find(key);
  if (it == aliases.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> to_three_class(std::string_view c) {
  if (c == "fear" || c == "sad" || c == "disgust" || c == "anger" || c == "negative")
    return "negative";
  if (c == "happy" || c == "contempt" || c == "positive") return "positive";
  if (c == "neutral") return "neutral";
  return std::nullopt;
}

std::optional<std::string> map_label(std::string_view canonical, ClassSet set) {
  if (set == ClassSet::k3) return to_three_class(canonical);
  if (class_index(set, canonical) >= 0) return std::string(canonical);
  return std::nullopt;
}

int class_index(ClassSet set, std::string_view canonical) {
  const auto& names = class_names(set);
  auto it = std::find(names.begin(), names.end(), canonical);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

}  // namespace edan
