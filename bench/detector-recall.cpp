// Face detector recall on 300-W images, upright and turned in the image
// plane, and each detector's time per image:
//   bench-detector-recall [--detectors a,b,...] [--angles 0,15,...] [--every N] DIR...
// Each DIR holds 300-W images with their .pts files (68 ground-truth points).
// A face counts as found when a detection's box holds the centre of its
// ground-truth points and the box's longer side is within a factor 2 of
// their extent (the extent of the upright points, so that turning the image
// does not change the size asked for); other detections count as "other".
// A turned copy turns the image about its centre onto a canvas large enough
// to hold all of it (black corners), and the points with it.
// --every N keeps every N-th image of each DIR (in name order) for the
// turned copies; angle 0 always uses every image.
// Prints one JSON object per line: detector, set, angle, faces, found,
// recall, other, seconds (detection time only).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "edan/dataset.hpp"
#include "edan/detect.hpp"
#include "edan/image.hpp"
#include "edan/record.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Item {
  std::string image;
  edan::Shape points;
};

// The image turned by `angle` degrees (counter-clockwise on screen) onto a
// canvas that holds all of it; the points are moved with it.
cv::Mat turn(const cv::Mat& gray, double angle, edan::Shape& points) {
  if (angle == 0) return gray;
  const cv::Point2f c((gray.cols - 1) / 2.0f, (gray.rows - 1) / 2.0f);
  cv::Mat m = cv::getRotationMatrix2D(c, angle, 1.0);
  const cv::Rect2f bound =
      cv::RotatedRect(c, gray.size(), static_cast<float>(angle)).boundingRect2f();
  m.at<double>(0, 2) += bound.width / 2.0 - c.x;
  m.at<double>(1, 2) += bound.height / 2.0 - c.y;
  cv::Mat out;
  cv::warpAffine(gray, out, m,
                 cv::Size(static_cast<int>(std::ceil(bound.width)),
                          static_cast<int>(std::ceil(bound.height))));
  for (auto& p : points) {
    const double x = p.x, y = p.y;
    p = {m.at<double>(0, 0) * x + m.at<double>(0, 1) * y + m.at<double>(0, 2),
         m.at<double>(1, 0) * x + m.at<double>(1, 1) * y + m.at<double>(1, 2)};
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> detectors = {"blazeface", "blazeface-front", "haar", "lbp", "dlib"};
  std::vector<double> angles = {0};
  std::size_t every = 1;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--detectors" && i + 1 < argc) {
      detectors = split(argv[++i]);
    } else if (a == "--angles" && i + 1 < argc) {
      angles.clear();
      for (const auto& s : split(argv[++i])) angles.push_back(std::stod(s));
    } else if (a == "--every" && i + 1 < argc) {
      every = std::max(1, std::atoi(argv[++i]));
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench-detector-recall [--detectors LIST] [--angles LIST] [--every N] DIR...\n");
      return 0;
    } else {
      dirs.push_back(a);
    }
  }
  if (dirs.empty()) {
    std::fprintf(stderr, "bench-detector-recall: give at least one 300-W folder (--help)\n");
    return 2;
  }
  for (const auto& dir : dirs) {
    // The images with their ground truth, as edan-index --layout 300w gives
    // them (sorted, points in pixel-centre coordinates).
    std::vector<Item> items;
    edan::IndexOptions index;
    index.layout = "300w";
    index.roots = {dir};
    edan::index_dataset(index, [&](const edan::Record& r) {
      auto points = edan::get_shape(r, "landmarks");
      if (points) {
        items.push_back({*edan::get_string(r, "image"), *points});
      } else {
        std::fprintf(stderr, "bench-detector-recall: skipped: %s\n", edan::to_line(r).c_str());
      }
    });
    // The set's name: the folder's path after "300w-subset/" (e.g. helen/testset).
    std::string set = fs::path(dir).lexically_normal().string();
    if (!set.empty() && set.back() == '/') set.pop_back();
    if (auto at = set.rfind("300w-subset/"); at != std::string::npos) set = set.substr(at + 12);
    for (const auto& name : detectors) {
      auto det = edan::make_detector(name);
      for (double angle : angles) {
        std::size_t faces = 0, found = 0, other = 0;
        double seconds = 0;
        for (std::size_t n = 0; n < items.size(); ++n) {
          if (angle != 0 && n % every != 0) continue;
          const auto& item = items[n];
          auto upright = edan::bounding_box(item.points);
          const double side = std::max(upright[2] - upright[0], upright[3] - upright[1]);
          edan::Shape pts = item.points;
          cv::Mat gray = turn(edan::read_gray(item.image), angle, pts);
          auto b = edan::bounding_box(pts);
          const double cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
          auto t0 = std::chrono::steady_clock::now();
          auto dets = det->detect(gray);
          seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          ++faces;
          bool hit = false;
          for (const auto& d : dets) {
            const auto& bx = d.box;
            const double s = std::max(bx.w, bx.h);
            const bool holds = cx >= bx.x && cx <= bx.x + bx.w && cy >= bx.y && cy <= bx.y + bx.h;
            if (!hit && holds && s >= side / 2 && s <= side * 2)
              hit = true;
            else
              ++other;
          }
          found += hit;
        }
        std::printf(
            "{\"detector\":\"%s\",\"set\":\"%s\",\"angle\":%g,\"faces\":%zu,\"found\":%zu,"
            "\"recall\":%.4f,\"other\":%zu,\"seconds\":%.2f}\n",
            name.c_str(), set.c_str(), angle, faces, found, faces ? double(found) / faces : 0.0,
            other, seconds);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
