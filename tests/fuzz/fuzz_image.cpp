// Fuzz target: image decoding and cropping. Any bytes go through
// decode_gray (with a 4-megapixel limit, so that a header asking for more
// is refused before decoding); a decoded image is cropped as edan-crop
// does for a detector box and as edan-predict resizes a crop.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  edan::peek_image_size(bytes);
  edan::exif_orientation(bytes);
  cv::Mat gray;
  try {
    gray = edan::decode_gray(bytes, "fuzz", /*max_pixels=*/std::int64_t{1} << 22);
  } catch (const edan::RecordError&) {
    return 0;
  }
  if (gray.empty() || gray.type() != CV_8UC1) std::abort();
  if (static_cast<std::int64_t>(gray.cols) * gray.rows > (std::int64_t{1} << 22)) std::abort();
  edan::FaceBox box{gray.cols / 4.0, gray.rows / 4.0, gray.cols / 2.0 + 1, gray.rows / 2.0 + 1};
  auto g = edan::geometry_from_box(box, edan::BoxCalibration{0.1, -0.05, 1.3}, 24);
  cv::Mat crop = edan::warp_crop(gray, g);
  if (crop.rows != 24 || crop.cols != 24 || crop.type() != CV_8UC1) std::abort();
  cv::Mat square = edan::resize_to_square(gray, 16);
  if (square.rows != 16 || square.cols != 16) std::abort();
  return 0;
}
