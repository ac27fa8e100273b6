#pragma once
// Image decoding: a PNG, JPEG, BMP, TIFF, WebP or PNM file becomes one 8-bit
// grayscale cv::Mat, the only image type the rest of edan handles. Sizes
// are checked from the file header before the pixels are decoded, so a
// "decompression bomb" is refused cheaply; formats whose header edan does
// not read are refused rather than handed to OpenCV.
#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace edan {

// The largest image edan decodes: 50 megapixels (e.g. 8660 x 5773), about
// 200 MB of BGRA pixels while decoding. Larger images are refused.
inline constexpr std::int64_t kMaxImagePixels = 50'000'000;
// Files larger than this are refused before they are read into memory.
inline constexpr std::int64_t kMaxImageFileBytes = std::int64_t{1} << 30;  // 1 GiB
// What all of a process's image reads in flight may hold at once (a file's
// bytes and its decoded pixels): reads past it wait, whatever the number of
// threads, so that memory stays bounded (read_gray).
inline constexpr std::int64_t kImageReadBudgetBytes = std::int64_t{3} << 29;  // 1.5 GiB

// Width and height as written in an image file's header, for the formats
// named above; nullopt for other formats or a header too short to tell.
// Never decodes pixels, never throws.
struct ImageSize {
  std::int64_t width = 0, height = 0;
};
std::optional<ImageSize> peek_image_size(std::string_view bytes);

// The EXIF orientation (1..8) of a JPEG file's APP1 segment, or 1 when the
// file is not a JPEG or has none. Never throws.
int exif_orientation(std::string_view bytes);

// Applies an EXIF orientation (1..8) to an image so that it appears upright:
// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
// 7 transverse, 8 rotate 90 counter-clockwise. Other values: unchanged.
cv::Mat apply_orientation(const cv::Mat& img, int orientation);

// Converts any decoded image to 8-bit grayscale:
//  - 1 channel: kept; 3 channels: BGR -> gray (ITU-R 601 weights, OpenCV's);
//  - 4 channels (BGRA): composited over black (each colour scaled by its
//    alpha), then to gray; 2 channels (gray + alpha): likewise;
//  - 16-bit: value * 255 / 65535, rounded; 32/64-bit float: [0, 1] -> [0, 255],
//    clipped; other integer depths are saturated to [0, 255].
// Throws RecordError on an empty image or an unsupported channel count.
cv::Mat to_gray8(const cv::Mat& img);

// Decodes the bytes of an image file into 8-bit grayscale (to_gray8), upright
// (EXIF orientation applied). `name` is the file name used in messages.
// Throws RecordError naming `name` when the bytes are empty, are not one of
// the formats peek_image_size reads (GIF too, which OpenCV 4.6 cannot
// decode), the header says the image is larger than max_pixels (checked
// before decoding), a JPEG or PNG is truncated (no end-of-image marker /
// IEND chunk), or OpenCV cannot decode them.
cv::Mat decode_gray(std::string_view bytes, const std::string& name,
                    std::int64_t max_pixels = kMaxImagePixels);

// Reads a whole file and decodes it with decode_gray. Only a regular file
// is opened (after following symlinks): a device, FIFO or socket is refused
// before it is read. At most the file's size is read, and only its first
// 256 KiB when the header is not an image's or names too many pixels; the
// rest waits within kImageReadBudgetBytes. Throws RecordError naming the path
// when it cannot be opened or read, is not a regular file, is empty, is
// larger than kMaxImageFileBytes, or cannot be decoded; RecordError (without
// the path) when the path contains a NUL byte.
cv::Mat read_gray(const std::string& path, std::int64_t max_pixels = kMaxImagePixels);

// Encodes an 8-bit image as PNG and writes it atomically (edan/fs.hpp),
// creating parent directories. Throws FatalError naming the path on failure.
void write_png(const std::string& path, const cv::Mat& img);

}  // namespace edan
