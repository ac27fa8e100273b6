// The in-car scene of examples/in-car: a synthetic video of passengers
// whose faces (CK+48 images of known expression) move along known paths
// and change expression at known times, with its ground truth; and the
// scoring of edan-predict's tracks and an alert rule against it.
//
//   bench-incar-scene make CKPLUS48 OUT.avi TRUTH.json [--faces N] [--seconds S] [--fps F]
//   bench-incar-scene score TRUTH.json RECORDS.jsonl [ALERTS.jsonl]
//   bench-incar-scene frame VIDEO N OUT.png     (frame N of a video, as a picture)
//
// make: 640×480 MJPEG AVI (OpenCV's own writer, no codec library), N = 1, 2
// or 4 passengers (subjects of CK+48 with fear, happy and surprise, the
// first N in name order; each expression the last, peak, image of the
// subject's first sequence of it). Passenger 0 shows fear for 2 s from
// 3 s on; passenger 1 never; passenger 2 from 0 s to 2 s, passenger 3 from
// 6 s on. The last passenger of 2 or more is hidden (occluded) from 4.0 to
// 4.5 s. TRUTH.json: {"fps", "frames", "size", "passengers": [{"id",
// "subject", "segments": [{"from", "to", "emotion", "image"}]}],
// "boxes": [[frame, passenger, x, y, w, h] ...], "expected_alerts":
// {EMOTION: [{"passenger", "time"}]}}: when each passenger has shown each
// emotion for 1 s, which is when the rule of examples/in-car/alert.jq
// ("EMOTION above P for 1 s") should fire.
//
// score: matches each frame's face records to the true boxes (greedy by
// box overlap, IoU at least 0.3) and counts, per passenger, how often the
// matched "track" changes (an id switch); with ALERTS (jq's alert lines of
// examples/in-car: {"alert", "track", "time", ...}), lists each alert
// with the passenger its track was matched to most, beside the expected
// alerts of its emotion (or of --rule EMOTION, when no alert fired).
// Prints one JSON object.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/image.hpp"
#include "edan/record.hpp"
#include "edan/train.hpp"  // read_records_file

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr int kWidth = 640, kHeight = 480;
const char* const kEmotions[] = {"fear", "happy", "surprise"};

struct Segment {
  double from, to;
  std::string emotion, image;
};
struct Passenger {
  std::string subject;
  std::vector<Segment> segments;
  double cx, cy, side, phase;
};

// The peak image of the subject's first sequence of `emotion`.
std::string peak_image(const fs::path& root, const std::string& emotion,
                       const std::string& subject) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root / emotion)) {
    auto n = e.path().filename().string();
    if (n.rfind(subject + "_", 0) == 0) names.push_back(n);
  }
  if (names.empty()) return {};
  std::sort(names.begin(), names.end());
  const std::string sequence = names.front().substr(0, 8);  // S011_001
  std::string last;
  for (const auto& n : names)
    if (n.rfind(sequence, 0) == 0) last = n;
  return (root / emotion / last).string();
}

std::vector<std::string> subjects_with_all(const fs::path& root) {
  std::map<std::string, std::set<std::string>> seen;
  for (const char* e : kEmotions) {
    if (!fs::is_directory(root / e))
      throw edan::FatalError((root / e).string() + ": no such folder (a CK+48 layout?)");
    for (const auto& f : fs::directory_iterator(root / e))
      seen[f.path().filename().string().substr(0, 4)].insert(e);
  }
  std::vector<std::string> out;
  for (const auto& [s, es] : seen)
    if (es.size() == std::size(kEmotions)) out.push_back(s);
  return out;
}

// Expressions over time of passenger k (of a scene `seconds` long).
std::vector<std::pair<double, std::string>> timeline(int k) {
  switch (k) {
    case 0:
      return {{0, "happy"}, {3, "fear"}, {5, "surprise"}};
    case 1:
      return {{0, "surprise"}, {2, "happy"}};
    case 2:
      return {{0, "fear"}, {2, "happy"}, {5, "surprise"}};
    default:
      return {{0, "happy"}, {4, "surprise"}, {6, "fear"}};
  }
}

cv::Rect2d box_at(const Passenger& p, double t) {
  const double x = p.cx + 22 * std::sin(2 * M_PI * t / 3.1 + p.phase);
  const double y = p.cy + 12 * std::sin(2 * M_PI * t / 1.7 + 2 * p.phase);
  const double side = p.side * (1 + 0.08 * std::sin(2 * M_PI * t / 2.3 + p.phase));
  return {x - side / 2, y - side / 2, side, side};
}

const Segment& segment_at(const Passenger& p, double t) {
  for (const auto& s : p.segments)
    if (t < s.to) return s;
  return p.segments.back();
}

cv::Mat background(std::mt19937& rng) {
  cv::Mat bg(kHeight, kWidth, CV_8UC3);
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x)
      bg.at<cv::Vec3b>(y, x) = cv::Vec3b(40 + y / 8, 45 + y / 7, 50 + x / 20);
  // Seats and windows: plain shapes, no face-like texture.
  cv::rectangle(bg, {0, 0, kWidth, 110}, {150, 140, 120}, cv::FILLED);
  for (int i = 0; i < 4; ++i)
    cv::rectangle(bg, {20 + i * 160, 180, 120, 300}, {60, 50, 45}, cv::FILLED);
  cv::Mat noise(bg.size(), CV_8UC3);
  cv::randu(noise, 0, 12);
  (void)rng;
  return bg + noise;
}

int make_scene(const std::vector<std::string>& args, int faces, double seconds, double fps) {
  if (args.size() != 4) throw edan::UsageError("make needs CKPLUS48 OUT.avi TRUTH.json");
  if (faces != 1 && faces != 2 && faces != 4) throw edan::UsageError("--faces must be 1, 2 or 4");
  if (seconds <= 0 || fps <= 0) throw edan::UsageError("--seconds and --fps must be above 0");
  const fs::path root = args[1];
  auto subjects = subjects_with_all(root);
  if (static_cast<int>(subjects.size()) < faces)
    throw edan::FatalError(root.string() + ": fewer than " + std::to_string(faces) +
                           " subjects with fear, happy and surprise");
  std::vector<Passenger> ps;
  const double spacing = static_cast<double>(kWidth) / faces;
  for (int k = 0; k < faces; ++k) {
    Passenger p;
    p.subject = subjects[k];
    auto tl = timeline(k);
    for (std::size_t i = 0; i < tl.size() && tl[i].first < seconds; ++i) {
      const double to = i + 1 < tl.size() ? std::min(seconds, tl[i + 1].first) : seconds;
      p.segments.push_back(
          {tl[i].first, to, tl[i].second, peak_image(root, tl[i].second, p.subject)});
    }
    p.cx = spacing * (k + 0.5);
    p.cy = 240 + (k % 2 ? 30 : -10);
    p.side = faces == 4 ? 100 : 130;
    p.phase = 1.3 * k;
    ps.push_back(std::move(p));
  }
  std::map<std::string, cv::Mat> faces_by_file;
  for (const auto& p : ps)
    for (const auto& s : p.segments) faces_by_file.emplace(s.image, edan::read_gray(s.image));

  cv::VideoWriter writer(args[2], cv::CAP_OPENCV_MJPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'),
                         fps, cv::Size(kWidth, kHeight), /*isColor=*/true);
  if (!writer.isOpened()) throw edan::FatalError(args[2] + ": cannot write a video");
  std::mt19937 rng(1);
  const cv::Mat bg = background(rng);
  const int frames = static_cast<int>(std::lround(seconds * fps));
  json::array boxes;
  for (int f = 0; f < frames; ++f) {
    const double t = f / fps;
    cv::Mat frame = bg.clone();
    for (int k = 0; k < faces; ++k) {
      if (faces > 1 && k == faces - 1 && t >= 4.0 && t < 4.5) continue;  // occluded
      const auto b = box_at(ps[k], t);
      const cv::Rect r(static_cast<int>(std::lround(b.x)), static_cast<int>(std::lround(b.y)),
                       static_cast<int>(std::lround(b.width)),
                       static_cast<int>(std::lround(b.width)));
      cv::Mat face, bgr;
      cv::resize(faces_by_file.at(segment_at(ps[k], t).image), face, r.size(), 0, 0,
                 cv::INTER_CUBIC);
      cv::cvtColor(face, bgr, cv::COLOR_GRAY2BGR);
      bgr.copyTo(frame(r & cv::Rect(0, 0, kWidth, kHeight)));
      boxes.push_back(json::array{f, k, r.x, r.y, r.width, r.height});
    }
    writer.write(frame);
  }
  json::object truth;
  truth["fps"] = fps;
  truth["frames"] = frames;
  truth["size"] = json::array{kWidth, kHeight};
  json::array jps;
  json::object expected;
  for (const char* e : kEmotions) expected[e] = json::array{};
  for (int k = 0; k < faces; ++k) {
    json::array segs;
    for (const auto& s : ps[k].segments) {
      segs.push_back(json::object{{"from", s.from},
                                  {"to", s.to},
                                  {"emotion", s.emotion},
                                  {"image", fs::relative(s.image, root).string()}});
      if (s.to - s.from >= 1.0)
        expected[s.emotion].as_array().push_back(
            json::object{{"passenger", k}, {"time", s.from + 1.0}});
    }
    jps.push_back(json::object{{"id", k}, {"subject", ps[k].subject}, {"segments", segs}});
  }
  truth["passengers"] = jps;
  truth["boxes"] = boxes;
  truth["expected_alerts"] = expected;
  std::ofstream out(args[3]);
  out << edan::to_text(truth) << "\n";
  if (!out) throw edan::FatalError(args[3] + ": cannot write");
  return 0;
}

double iou(const cv::Rect2d& a, const cv::Rect2d& b) {
  const double i = (a & b).area();
  return i <= 0 ? 0 : i / (a.area() + b.area() - i);
}

cv::Rect2d record_box(const edan::Record& r) {
  const auto b = edan::get_box(r).value();
  return {b.x, b.y, b.w, b.h};
}

int score(const std::vector<std::string>& args, const std::string& rule) {
  if (args.size() < 3 || args.size() > 4)
    throw edan::UsageError("score needs TRUTH.json RECORDS.jsonl [ALERTS.jsonl]");
  std::ifstream in(args[1]);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) throw edan::FatalError(args[1] + ": cannot read");
  const auto truth = json::parse(ss.str()).as_object();
  const auto npass = truth.at("passengers").as_array().size();
  std::map<std::int64_t, std::vector<std::pair<int, cv::Rect2d>>> true_boxes;
  for (const auto& b : truth.at("boxes").as_array()) {
    const auto& a = b.as_array();
    true_boxes[a[0].to_number<std::int64_t>()].push_back(
        {static_cast<int>(a[1].to_number<std::int64_t>()),
         {a[2].to_number<double>(), a[3].to_number<double>(), a[4].to_number<double>(),
          a[5].to_number<double>()}});
  }
  std::map<std::int64_t, std::vector<edan::Record>> by_frame;
  std::set<std::int64_t> frames_seen;
  for (auto& r : edan::read_records_file(args[2])) {
    if (!r.contains("frame")) continue;
    const auto f = r.at("frame").to_number<std::int64_t>();
    frames_seen.insert(f);
    if (r.contains("box") && !edan::has_error(r)) by_frame[f].push_back(std::move(r));
  }
  std::vector<std::int64_t> last_track(npass, -1);
  std::vector<int> switches(npass, 0), matched(npass, 0), present(npass, 0);
  std::map<std::int64_t, std::map<int, int>> track_votes;  // track -> passenger -> frames
  int false_faces = 0;
  for (auto f : frames_seen) {
    auto& recs = by_frame[f];
    std::vector<bool> used(recs.size(), false);
    for (const auto& [k, tb] : true_boxes[f]) {
      ++present[k];
      int best = -1;
      double best_iou = 0.3;
      for (std::size_t i = 0; i < recs.size(); ++i)
        if (!used[i] && iou(record_box(recs[i]), tb) >= best_iou)
          best_iou = iou(record_box(recs[i]), tb), best = static_cast<int>(i);
      if (best < 0) continue;
      used[best] = true;
      ++matched[k];
      if (!recs[best].contains("track")) continue;
      const auto track = recs[best].at("track").to_number<std::int64_t>();
      ++track_votes[track][k];
      if (last_track[k] >= 0 && track != last_track[k]) ++switches[k];
      last_track[k] = track;
    }
    false_faces += static_cast<int>(std::count(used.begin(), used.end(), false));
  }
  json::array per;
  int total_switches = 0, total_present = 0, total_matched = 0;
  for (std::size_t k = 0; k < npass; ++k) {
    per.push_back(json::object{{"passenger", k},
                               {"frames", present[k]},
                               {"found", matched[k]},
                               {"id_switches", switches[k]}});
    total_switches += switches[k];
    total_present += present[k];
    total_matched += matched[k];
  }
  json::object out{{"frames_scored", frames_seen.size()},
                   {"faces", total_present},
                   {"found", total_matched},
                   {"false_faces", false_faces},
                   {"id_switches", total_switches},
                   {"tracks", track_votes.size()},
                   {"passengers", per}};
  if (args.size() == 4) {
    json::array alerts;
    const auto alerts_in = edan::read_records_file(args[3]);
    for (const auto& a : alerts_in) {
      if (!a.contains("track")) continue;
      const auto track = a.at("track").to_number<std::int64_t>();
      int passenger = -1, most = 0;
      for (const auto& [k, n] : track_votes[track])
        if (n > most) most = n, passenger = k;
      json::object o{{"track", track}, {"passenger", passenger}};
      if (a.contains("time")) o["time"] = a.at("time");
      if (a.contains("frame")) o["frame"] = a.at("frame");
      alerts.push_back(std::move(o));
    }
    // The expected alerts of the rule's emotion (the alerts' "alert").
    json::array expected;
    const auto& by_emotion = truth.at("expected_alerts").as_object();
    std::set<std::string> rules;
    for (const auto& a : alerts_in)
      if (a.contains("alert") && a.at("alert").is_string())
        rules.insert(std::string(a.at("alert").as_string()));
    if (!rule.empty()) rules.insert(rule);
    for (const auto& e : rules)
      if (by_emotion.contains(e))
        for (const auto& x : by_emotion.at(e).as_array()) {
          auto o = x.as_object();
          o["alert"] = e;
          expected.push_back(o);
        }
    out["alerts"] = alerts;
    out["expected_alerts"] = expected;
  }
  std::printf("%s\n", edan::to_text(out).c_str());
  return 0;
}

int frame(const std::vector<std::string>& args) {
  if (args.size() != 4) throw edan::UsageError("frame needs VIDEO N OUT.png");
  cv::VideoCapture cap(args[1]);
  if (!cap.isOpened()) throw edan::FatalError(args[1] + ": cannot open as a video");
  const long n = std::stol(args[2]);
  cv::Mat f;
  for (long i = 0; i <= n; ++i)
    if (!cap.read(f)) throw edan::FatalError(args[1] + ": has no frame " + args[2]);
  if (!cv::imwrite(args[3], f)) throw edan::FatalError(args[3] + ": cannot write");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  edan::cli::Tool tool{"bench-incar-scene",
                       "Make the in-car scene video and its truth, or score tracks against it.",
                       "make CKPLUS48 OUT.avi TRUTH.json | score TRUTH.json RECORDS [ALERTS] | "
                       "frame VIDEO N OUT.png"};
  int faces = 2;
  double seconds = 8, fps = 15;
  std::string rule;
  std::vector<std::string> args;
  tool.add({"--faces"}, "N", "passengers in the scene: 1, 2 or 4 (make)", &faces);
  tool.add({"--seconds"}, "S", "length of the scene (make)", &seconds);
  tool.add({"--fps"}, "F", "frames per second (make)", &fps);
  tool.add({"--rule"}, "EMOTION",
           "the rule's emotion, for its expected alerts when ALERTS is empty (score)", &rule);
  tool.positional("ARGS", &args, 1, 4);
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    if (args[0] == "make") return make_scene(args, faces, seconds, fps);
    if (args[0] == "score") return score(args, rule);
    if (args[0] == "frame") return frame(args);
    throw edan::UsageError("unknown mode '" + args[0] + "' (make or score)");
  });
}
