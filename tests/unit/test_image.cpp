#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "edan/error.hpp"
#include "edan/image.hpp"

namespace {
std::string encode(const std::string& ext, const cv::Mat& img) {
  std::vector<unsigned char> buf;
  EXPECT_TRUE(cv::imencode(ext, img, buf));
  return {buf.begin(), buf.end()};
}

// A message check that keeps going: the thrown RecordError must name `what`.
template <typename Fn>
void expect_record_error(Fn fn, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no RecordError thrown";
  } catch (const edan::RecordError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

void put16(std::string& s, unsigned v) {  // little-endian
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& s, unsigned v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
}

// An uncompressed 8-bit palette TIFF, 4x1 pixels with indices 0,1,2,3 and a
// palette black, white, pure red, pure blue.
std::string palette_tiff() {
  std::string s = "II*";
  s.push_back('\0');
  const unsigned n_tags = 10, ifd = 8, pixels = ifd + 2 + 12 * n_tags + 4, cmap = pixels + 4;
  put32(s, ifd);
  put16(s, n_tags);
  auto tag = [&](unsigned t, unsigned type, unsigned count, unsigned value) {
    put16(s, t);
    put16(s, type);
    put32(s, count);
    put32(s, value);
  };
  tag(256, 3, 1, 4);           // width
  tag(257, 3, 1, 1);           // height
  tag(258, 3, 1, 8);           // bits per sample
  tag(259, 3, 1, 1);           // no compression
  tag(262, 3, 1, 3);           // photometric: palette
  tag(273, 4, 1, pixels);      // strip offset
  tag(277, 3, 1, 1);           // samples per pixel
  tag(278, 3, 1, 1);           // rows per strip
  tag(279, 4, 1, 4);           // strip bytes
  tag(320, 3, 3 * 256, cmap);  // colour map: all reds, then greens, then blues
  put32(s, 0);
  for (char i = 0; i < 4; ++i) s.push_back(i);
  const unsigned r[4] = {0, 65535, 65535, 0}, g[4] = {0, 65535, 0, 0}, b[4] = {0, 65535, 0, 65535};
  for (const unsigned* ch : {r, g, b})
    for (unsigned i = 0; i < 256; ++i) put16(s, i < 4 ? ch[i] : 0);
  return s;
}

// A JPEG with an EXIF APP1 segment carrying `orientation`, inserted after SOI.
std::string jpeg_with_orientation(const cv::Mat& img, unsigned orientation) {
  std::string jpg = encode(".jpg", img);
  std::string tiff = "II*";
  tiff.push_back('\0');
  put32(tiff, 8);
  put16(tiff, 1);
  put16(tiff, 0x0112);
  put16(tiff, 3);
  put32(tiff, 1);
  put32(tiff, orientation);
  put32(tiff, 0);
  std::string payload = std::string("Exif\0\0", 6) + tiff;
  std::string app1 = "\xFF\xE1";
  unsigned len = static_cast<unsigned>(payload.size() + 2);
  app1.push_back(static_cast<char>(len >> 8));
  app1.push_back(static_cast<char>(len & 0xFF));
  return jpg.substr(0, 2) + app1 + payload + jpg.substr(2);
}
}  // namespace

TEST(Image_ToGray8, sixteenBitIsScaledTo255) {
  cv::Mat img(1, 3, CV_16U);
  img.at<std::uint16_t>(0) = 65535;
  img.at<std::uint16_t>(1) = 257 * 100;
  img.at<std::uint16_t>(2) = 0;
  cv::Mat g = edan::to_gray8(img);
  ASSERT_EQ(g.type(), CV_8UC1);
  EXPECT_EQ(g.at<std::uint8_t>(0), 255);
  EXPECT_EQ(g.at<std::uint8_t>(1), 100);
  EXPECT_EQ(g.at<std::uint8_t>(2), 0);
}

TEST(Image_ToGray8, bgrUsesOpenCVWeights) {
  cv::Mat img(1, 1, CV_8UC3, cv::Scalar(255, 0, 0));  // pure blue: 0.114 * 255 = 29.07
  EXPECT_EQ(edan::to_gray8(img).at<std::uint8_t>(0), 29);
}

TEST(Image_ToGray8, alphaCompositesOverBlack) {
  cv::Mat img(1, 3, CV_8UC4);
  img.at<cv::Vec4b>(0) = {200, 200, 200, 255};
  img.at<cv::Vec4b>(1) = {200, 200, 200, 0};
  img.at<cv::Vec4b>(2) = {200, 200, 200, 51};  // 200 * 51 / 255 = 40
  cv::Mat g = edan::to_gray8(img);
  EXPECT_EQ(g.at<std::uint8_t>(0), 200);
  EXPECT_EQ(g.at<std::uint8_t>(1), 0);
  EXPECT_EQ(g.at<std::uint8_t>(2), 40);
}

TEST(Image_ToGray8, floatMapsUnitRange) {
  cv::Mat img(1, 3, CV_32F);
  img.at<float>(0) = 0.25f;  // 63.75
  img.at<float>(1) = 2.0f;   // clipped
  img.at<float>(2) = -1.0f;  // clipped
  cv::Mat g = edan::to_gray8(img);
  EXPECT_EQ(g.at<std::uint8_t>(0), 64);
  EXPECT_EQ(g.at<std::uint8_t>(1), 255);
  EXPECT_EQ(g.at<std::uint8_t>(2), 0);
}

TEST(Image_PeekSize, readsHeadersWithoutDecoding) {
  cv::Mat img(7, 13, CV_8UC1, cv::Scalar(9));
  for (const char* ext : {".png", ".jpg", ".bmp", ".tiff", ".pgm", ".webp"}) {
    auto size = edan::peek_image_size(encode(ext, img));
    ASSERT_TRUE(size.has_value()) << ext;
    EXPECT_EQ(size->width, 13) << ext;
    EXPECT_EQ(size->height, 7) << ext;
  }
  EXPECT_FALSE(edan::peek_image_size("not an image").has_value());
  EXPECT_FALSE(edan::peek_image_size("").has_value());
}

TEST(Image_DecodeGray, pngRoundTripIsExact) {
  cv::Mat img(5, 6, CV_8UC1);
  for (int i = 0; i < 30; ++i) img.at<std::uint8_t>(i) = static_cast<std::uint8_t>(i * 8);
  cv::Mat g = edan::decode_gray(encode(".png", img), "x.png");
  ASSERT_EQ(g.size(), img.size());
  EXPECT_EQ(cv::countNonZero(g != img), 0);
}

TEST(Image_DecodeGray, sixteenBitAndAlphaPngs) {
  cv::Mat deep(1, 2, CV_16U);
  deep.at<std::uint16_t>(0) = 65535;
  deep.at<std::uint16_t>(1) = 257 * 7;
  cv::Mat g = edan::decode_gray(encode(".png", deep), "deep.png");
  EXPECT_EQ(g.at<std::uint8_t>(0), 255);
  EXPECT_EQ(g.at<std::uint8_t>(1), 7);

  cv::Mat rgba(1, 2, CV_8UC4);
  rgba.at<cv::Vec4b>(0) = {100, 100, 100, 0};
  rgba.at<cv::Vec4b>(1) = {100, 100, 100, 255};
  g = edan::decode_gray(encode(".png", rgba), "rgba.png");
  EXPECT_EQ(g.at<std::uint8_t>(0), 0);
  EXPECT_EQ(g.at<std::uint8_t>(1), 100);
}

// libpng's own warnings (here a text chunk with a bad CRC, which OpenCV's
// decoder lets libpng print on stderr) are not printed: the image decodes.
TEST(Image_DecodeGray, pngWarningsAreNotPrinted) {
  cv::Mat img(4, 4, CV_8UC1, cv::Scalar(77));
  std::string png = encode(".png", img);
  // After the signature (8) and IHDR (4 + 4 + 13 + 4): a tEXt chunk whose CRC is wrong.
  const std::string text("Comment\0hello", 13);
  std::string chunk;
  for (int shift : {24, 16, 8, 0}) chunk += static_cast<char>((text.size() >> shift) & 0xFF);
  chunk += "tEXt" + text + std::string("\xde\xad\xbe\xef", 4);
  png.insert(33, chunk);
  testing::internal::CaptureStderr();
  cv::Mat g = edan::decode_gray(png, "warn.png");
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_EQ(printed, "");
  ASSERT_EQ(g.size(), img.size());
  EXPECT_EQ(g.at<std::uint8_t>(2, 2), 77);
}

TEST(Image_DecodeGray, pngPaletteGrayBitsAndInterlaceMatchOpenCV) {
  // Bytes OpenCV itself decodes, against edan's libpng path.
  cv::Mat img(7, 9, CV_8UC3);
  cv::randu(img, 0, 255);
  std::vector<uchar> buf;
  cv::imencode(".png", img, buf);
  const std::string png(buf.begin(), buf.end());
  cv::Mat theirs;
  cv::cvtColor(cv::imdecode(buf, cv::IMREAD_UNCHANGED), theirs, cv::COLOR_BGR2GRAY);
  cv::Mat ours = edan::decode_gray(png, "rgb.png");
  EXPECT_EQ(cv::countNonZero(ours != theirs), 0);
  // Truncated inside the pixel data: an error naming the file, not a crash.
  std::string cut = png.substr(0, png.size() / 2) + png.substr(png.size() - 12);
  EXPECT_THROW(edan::decode_gray(cut, "cut.png"), edan::RecordError);
}

TEST(Image_DecodeGray, paletteTiff) {
  cv::Mat g = edan::decode_gray(palette_tiff(), "pal.tiff");
  ASSERT_EQ(g.rows, 1);
  ASSERT_EQ(g.cols, 4);
  EXPECT_EQ(g.at<std::uint8_t>(0), 0);
  EXPECT_EQ(g.at<std::uint8_t>(1), 255);
  EXPECT_EQ(g.at<std::uint8_t>(2), 76);  // red: 0.299 * 255 = 76.2
  EXPECT_EQ(g.at<std::uint8_t>(3), 29);  // blue: 0.114 * 255 = 29.1
}

TEST(Image_DecodeGray, exifOrientationIsApplied) {
  // 16 wide, 8 high: left half black, right half white.
  cv::Mat img(8, 16, CV_8UC1, cv::Scalar(0));
  img(cv::Rect(8, 0, 8, 8)).setTo(255);
  std::string jpg = jpeg_with_orientation(img, 6);
  EXPECT_EQ(edan::exif_orientation(jpg), 6);
  cv::Mat g = edan::decode_gray(jpg, "rot.jpg");
  // Rotated 90 degrees clockwise: 8 wide, 16 high, the left (black) half on top.
  ASSERT_EQ(g.cols, 8);
  ASSERT_EQ(g.rows, 16);
  EXPECT_LT(g.at<std::uint8_t>(2, 4), 40);
  EXPECT_GT(g.at<std::uint8_t>(13, 4), 215);
  EXPECT_EQ(edan::exif_orientation(encode(".jpg", img)), 1);
}

TEST(Image_DecodeGray, badBytesNameTheFile) {
  expect_record_error([] { edan::decode_gray("", "empty.png"); }, "empty.png: empty file");
  expect_record_error([] { edan::decode_gray("hello", "text.jpg"); }, "text.jpg: cannot decode");
  cv::Mat img(32, 32, CV_8UC1, cv::Scalar(77));
  cv::randu(img, 0, 255);
  std::string png = encode(".png", img), jpg = encode(".jpg", img);
  expect_record_error([&] { edan::decode_gray(png.substr(0, png.size() / 2), "half.png"); },
                      "half.png: truncated");
  expect_record_error([&] { edan::decode_gray(jpg.substr(0, jpg.size() / 2), "half.jpg"); },
                      "half.jpg: truncated");
}

TEST(Image_DecodeGray, refusesLargeImagesBeforeDecoding) {
  cv::Mat img(100, 100, CV_8UC1, cv::Scalar(1));
  std::string png = encode(".png", img);
  expect_record_error([&] { edan::decode_gray(png, "big.png", 9999); },
                      "big.png: image of 100x100");
  EXPECT_NO_THROW(edan::decode_gray(png, "ok.png", 10000));
  // A header claiming 100000 x 100000 pixels: refused from the header alone.
  std::string bomb = png;
  bomb[16] = 0, bomb[17] = 1, bomb[18] = static_cast<char>(0x86),
  bomb[19] = static_cast<char>(0xA0);
  bomb[20] = 0, bomb[21] = 1, bomb[22] = static_cast<char>(0x86),
  bomb[23] = static_cast<char>(0xA0);
  expect_record_error([&] { edan::decode_gray(bomb, "bomb.png"); },
                      "bomb.png: image of 100000x100000 pixels is larger than the maximum of "
                      "50000000");
}

TEST(Image_ReadGray, missingAndEmptyFilesNameThePath) {
  auto dir =
      std::filesystem::temp_directory_path() / ("edan_test_image_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string missing = (dir / "missing.png").string(), empty = (dir / "empty.png").string();
  std::fclose(std::fopen(empty.c_str(), "wb"));
  expect_record_error([&] { edan::read_gray(missing); }, missing + ": cannot open");
  expect_record_error([&] { edan::read_gray(empty); }, empty + ": empty file");
  std::string good = (dir / "sub" / "good.png").string();
  edan::write_png(good, cv::Mat(3, 4, CV_8UC1, cv::Scalar(42)));
  cv::Mat g = edan::read_gray(good);
  EXPECT_EQ(g.cols, 4);
  EXPECT_EQ(g.at<std::uint8_t>(2, 3), 42);
  // A NUL byte would make fopen open `good` itself: refused.
  expect_record_error([&] { edan::read_gray(good + std::string(1, '\0') + "x"); },
                      "image path contains a NUL byte");
  std::filesystem::remove_all(dir);
}

TEST(Image_DecodeGray, refusesFormatsWithoutAHeaderCheck) {
  // A 30000 x 30000 PAM header: OpenCV would allocate before reading; edan
  // does not hand it over.
  expect_record_error(
      [] { edan::decode_gray("P7\nWIDTH 30000\nHEIGHT 30000\nDEPTH 1\nMAXVAL 255\nENDHDR\n", "x.pam"); },
      "x.pam: cannot decode: not a PNG, JPEG, BMP, TIFF, WebP or PNM image");
}
