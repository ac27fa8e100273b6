#include "edan/image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <png.h>
#include <csetjmp>
#include <vector>

#include "edan/error.hpp"
#include "edan/fs.hpp"

namespace edan {
namespace {
using namespace std::string_view_literals;

// Bounds-checked little readers over a file's bytes.
struct Bytes {
  std::string_view b;
  bool has(std::size_t at, std::size_t n) const { return at <= b.size() && n <= b.size() - at; }
  std::uint32_t u8(std::size_t at) const { return static_cast<unsigned char>(b[at]); }
  std::uint32_t be16(std::size_t at) const { return u8(at) << 8 | u8(at + 1); }
  std::uint32_t le16(std::size_t at) const { return u8(at) | u8(at + 1) << 8; }
  std::uint32_t be32(std::size_t at) const { return be16(at) << 16 | be16(at + 2); }
  std::uint32_t le32(std::size_t at) const { return le16(at) | le16(at + 2) << 16; }
  std::uint32_t u16(std::size_t at, bool le) const { return le ? le16(at) : be16(at); }
  std::uint32_t u32(std::size_t at, bool le) const { return le ? le32(at) : be32(at); }
  bool starts(std::size_t at, std::string_view s) const {
    return has(at, s.size()) && b.substr(at, s.size()) == s;
  }
};

bool is_png(const Bytes& d) { return d.starts(0, "\x89PNG\r\n\x1a\n"sv); }
bool is_jpeg(const Bytes& d) {
  return d.has(0, 3) && d.u8(0) == 0xFF && d.u8(1) == 0xD8 && d.u8(2) == 0xFF;
}

// Walks JPEG marker segments from SOI up to the first SOS. fn(marker,
// payload offset, payload length) may return true to stop the walk. Returns
// the offset just past the first SOS header, or 0 when the walk stopped
// early or ran off the data.
template <typename Fn>
std::size_t walk_jpeg(const Bytes& d, Fn fn) {
  std::size_t i = 2;
  while (d.has(i, 2)) {
    if (d.u8(i) != 0xFF) return 0;
    std::uint32_t m = d.u8(i + 1);
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    i += 2;
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // markers without payload
    if (!d.has(i, 2)) return 0;
    std::size_t len = d.be16(i);
    if (len < 2 || !d.has(i, len)) return 0;
    if (fn(m, i + 2, len - 2)) return 0;
    if (m == 0xDA) return i + len;
    i += len;
  }
  return 0;
}

// The first value of a SHORT or LONG tag in the first IFD of a TIFF
// structure starting at `base` (a TIFF file, or a JPEG's EXIF block).
std::optional<std::uint32_t> tiff_tag(const Bytes& d, std::size_t base, std::uint32_t tag) {
  if (!d.has(base, 8)) return std::nullopt;
  bool le;
  if (d.starts(base, "II*\0"sv))
    le = true;
  else if (d.starts(base, "MM\0*"sv))
    le = false;
  else
    return std::nullopt;
  std::size_t ifd = base + d.u32(base + 4, le);
  if (ifd < base || !d.has(ifd, 2)) return std::nullopt;
  std::size_t n = d.u16(ifd, le);
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t e = ifd + 2 + 12 * k;
    if (!d.has(e, 12)) return std::nullopt;
    if (d.u16(e, le) != tag) continue;
    std::uint32_t type = d.u16(e + 2, le);
    if (type == 3) return d.u16(e + 8, le);  // SHORT
    if (type == 4) return d.u32(e + 8, le);  // LONG
    return std::nullopt;
  }
  return std::nullopt;
}

// PNM (P1..P6): the first two integers after the magic, comments skipped.
std::optional<ImageSize> pnm_size(const Bytes& d) {
  std::size_t i = 2;
  std::int64_t v[2];
  for (auto& x : v) {
    for (;;) {
      while (d.has(i, 1) && std::isspace(static_cast<int>(d.u8(i)))) ++i;
      if (d.has(i, 1) && d.u8(i) == '#') {
        while (d.has(i, 1) && d.u8(i) != '\n') ++i;
        continue;
      }
      break;
    }
    if (!d.has(i, 1) || !std::isdigit(static_cast<int>(d.u8(i)))) return std::nullopt;
    x = 0;
    while (d.has(i, 1) && std::isdigit(static_cast<int>(d.u8(i))) && x < (std::int64_t{1} << 40))
      x = x * 10 + (d.u8(i++) - '0');
  }
  return ImageSize{v[0], v[1]};
}

// True when a PNG's chunks run from the signature to an IEND chunk.
bool png_complete(const Bytes& d) {
  std::size_t i = 8;
  while (d.has(i, 12)) {
    std::size_t len = d.be32(i);
    if (d.starts(i + 4, "IEND"sv)) return true;
    if (!d.has(i + 12, len)) return false;
    i += 12 + len;
  }
  return false;
}

// True when a JPEG has an end-of-image marker after its first scan. Inside
// entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
// FF D9 there is the real end.
bool jpeg_complete(const Bytes& d) {
  std::size_t scan = walk_jpeg(d, [](std::uint32_t, std::size_t, std::size_t) { return false; });
  return scan != 0 && d.b.find("\xFF\xD9"sv, scan) != std::string_view::npos;
}

}  // namespace

std::optional<ImageSize> peek_image_size(std::string_view bytes) {
  Bytes d{bytes};
  if (is_png(d)) {
    if (!d.starts(12, "IHDR"sv) || !d.has(16, 8)) return std::nullopt;
    return ImageSize{d.be32(16), d.be32(20)};
  }
  if (is_jpeg(d)) {
    std::optional<ImageSize> size;
    walk_jpeg(d, [&](std::uint32_t m, std::size_t at, std::size_t len) {
      bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof && len >= 5) {
        size = ImageSize{d.be16(at + 3), d.be16(at + 1)};
        return true;
      }
      return false;
    });
    return size;
  }
  if ((d.starts(0, "GIF87a"sv) || d.starts(0, "GIF89a"sv)) && d.has(6, 4))
    return ImageSize{d.le16(6), d.le16(8)};
  if (d.starts(0, "BM"sv) && d.has(14, 12)) {
    if (d.le32(14) == 12) return ImageSize{d.le16(18), d.le16(20)};
    if (!d.has(18, 8)) return std::nullopt;
    auto h = static_cast<std::int32_t>(d.le32(22));
    return ImageSize{static_cast<std::int32_t>(d.le32(18)), h < 0 ? -std::int64_t{h} : h};
  }
  if (d.starts(0, "II*\0"sv) || d.starts(0, "MM\0*"sv)) {
    auto w = tiff_tag(d, 0, 256), h = tiff_tag(d, 0, 257);
    if (!w || !h) return std::nullopt;
    return ImageSize{*w, *h};
  }
  if (d.starts(0, "RIFF"sv) && d.starts(8, "WEBP"sv)) {
    if (d.starts(12, "VP8 "sv) && d.has(26, 4))
      return ImageSize{d.le16(26) & 0x3FFF, d.le16(28) & 0x3FFF};
    if (d.starts(12, "VP8L"sv) && d.has(21, 4)) {
      std::uint32_t bits = d.le32(21);
      return ImageSize{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
    }
    if (d.starts(12, "VP8X"sv) && d.has(24, 6))
      return ImageSize{(d.le16(24) | d.u8(26) << 16) + 1, (d.le16(27) | d.u8(29) << 16) + 1};
    return std::nullopt;
  }
  if (d.has(0, 2) && d.u8(0) == 'P' && d.u8(1) >= '1' && d.u8(1) <= '6') return pnm_size(d);
  return std::nullopt;
}

int exif_orientation(std::string_view bytes) {
  Bytes d{bytes};
  if (!is_jpeg(d)) return 1;
  int orientation = 1;
  walk_jpeg(d, [&](std::uint32_t m, std::size_t at, std::size_t len) {
    if (m != 0xE1 || len < 14 || !d.starts(at, "Exif\0\0"sv)) return false;
    // The EXIF block is a TIFF structure; keep its reads inside the segment.
    Bytes exif{bytes.substr(at + 6, len - 6)};
    auto v = tiff_tag(exif, 0, 0x0112);
    if (v && *v >= 1 && *v <= 8) orientation = static_cast<int>(*v);
    return true;
  });
  return orientation;
}

cv::Mat apply_orientation(const cv::Mat& img, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2:
      cv::flip(img, out, 1);
      break;
    case 3:
      cv::rotate(img, out, cv::ROTATE_180);
      break;
    case 4:
      cv::flip(img, out, 0);
      break;
    case 5:
      cv::transpose(img, out);
      break;
    case 6:
      cv::rotate(img, out, cv::ROTATE_90_CLOCKWISE);
      break;
    case 7:
      cv::transpose(img, out);
      cv::rotate(out, out, cv::ROTATE_180);
      break;
    case 8:
      cv::rotate(img, out, cv::ROTATE_90_COUNTERCLOCKWISE);
      break;
    default:
      out = img;
  }
  return out;
}

cv::Mat to_gray8(const cv::Mat& img) {
  if (img.empty()) throw RecordError("empty image");
  cv::Mat eight;
  switch (img.depth()) {
    case CV_8U:
      eight = img;
      break;
    case CV_16U:
      img.convertTo(eight, CV_8U, 255.0 / 65535.0);
      break;
    case CV_32F:
    case CV_64F:
      img.convertTo(eight, CV_8U, 255.0);
      break;
    default:
      img.convertTo(eight, CV_8U);
      break;
  }
  cv::Mat gray;
  switch (eight.channels()) {
    case 1:
      return eight.clone();
    case 3:
      cv::cvtColor(eight, gray, cv::COLOR_BGR2GRAY);
      return gray;
    case 2:
    case 4: {
      std::vector<cv::Mat> planes;
      cv::split(eight, planes);
      cv::Mat alpha = planes.back();
      if (eight.channels() == 4)
        cv::cvtColor(eight, gray, cv::COLOR_BGRA2GRAY);
      else
        gray = planes[0];
      // Gray conversion is linear, so scaling the gray by alpha equals
      // compositing each colour over black first.
      cv::Mat out;
      cv::multiply(gray, alpha, out, 1.0 / 255.0);
      return out;
    }
    default:
      throw RecordError("unsupported image with " + std::to_string(eight.channels()) + " channels");
  }
}

namespace {
// PNG through libpng itself rather than OpenCV, for one reason: OpenCV
// leaves libpng's warning handler at its default, which prints "libpng
// warning: ..." on stderr (an iCCP profile, a bad CRC in a text chunk) past
// edan's diagnostics and -q. Here warnings are dropped (they concern
// metadata, not pixels; the image decodes) and errors become the record's
// error. The pixels are those OpenCV's IMREAD_UNCHANGED gives: 8 or 16 bits,
// gray, gray + alpha, BGR or BGRA (palettes expanded, a palette's tRNS as
// alpha), so that to_gray8 converts them as before.
struct PngSource {
  const unsigned char* data;
  std::size_t size, pos;
  char message[200];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", msg);
  png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}
void png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "the data ends early");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

// The steps that may longjmp, apart from anything with a destructor:
// reads the header and sets the transforms (rows == nullptr), or reads the
// rows into `rows`. Returns false with src.message set on a libpng error.
struct PngShape {
  png_uint_32 width = 0, height = 0;
  int depth = 8, channels = 1;
};
bool png_step(png_structp png, png_infop info, PngShape* shape, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  if (!rows) {
    png_read_info(png, info);
    int depth = 0, color = 0;
    png_get_IHDR(png, info, &shape->width, &shape->height, &depth, &color, nullptr, nullptr,
                 nullptr);
    if (color == PNG_COLOR_TYPE_PALETTE) {
      png_set_palette_to_rgb(png);
      if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    }
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_swap(png);  // host order (little-endian here)
    png_set_bgr(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    shape->depth = png_get_bit_depth(png, info);
    shape->channels = png_get_channels(png, info);
  } else {
    png_read_image(png, rows);
    png_read_end(png, nullptr);
  }
  return true;
}

cv::Mat decode_png(std::string_view bytes, const std::string& name) {
  PngSource src{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0, ""};
  struct Reader {
    png_structp png = nullptr;
    png_infop info = nullptr;
    ~Reader() { png_destroy_read_struct(&png, &info, nullptr); }
  } r;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  if (r.png) r.info = png_create_info_struct(r.png);
  if (!r.png || !r.info) throw RecordError(name + ": cannot decode PNG: out of memory");
  png_set_read_fn(r.png, &src, png_on_read);
  auto fail = [&] { return RecordError(name + ": cannot decode PNG: " + src.message); };
  PngShape shape;
  if (!png_step(r.png, r.info, &shape, nullptr)) throw fail();
  if (shape.depth != 8 && shape.depth != 16)
    throw RecordError(name + ": cannot decode PNG: bit depth " + std::to_string(shape.depth));
  cv::Mat img(static_cast<int>(shape.height), static_cast<int>(shape.width),
              CV_MAKETYPE(shape.depth == 16 ? CV_16U : CV_8U, shape.channels));
  std::vector<png_bytep> rows(shape.height);
  for (png_uint_32 y = 0; y < shape.height; ++y) rows[y] = img.ptr<png_byte>(static_cast<int>(y));
  if (!png_step(r.png, r.info, &shape, rows.data())) throw fail();
  return img;
}
}  // namespace

cv::Mat decode_gray(std::string_view bytes, const std::string& name, std::int64_t max_pixels) {
  if (bytes.empty()) throw RecordError(name + ": empty file");
  auto too_large = [&](std::int64_t w, std::int64_t h) {
    return RecordError(name + ": image of " + std::to_string(w) + "x" + std::to_string(h) +
                       " pixels is larger than the maximum of " + std::to_string(max_pixels) +
                       " pixels");
  };
  // Only formats whose size is known before decoding are decoded: OpenCV
  // would allocate the pixels of any other (Sun raster, PAM, PFM, HDR, ...)
  // from its header before finding the data missing, and decodes some of
  // them through a temporary file.
  auto size = peek_image_size(bytes);
  if (!size)
    throw RecordError(name +
                      ": cannot decode: not a PNG, JPEG, BMP, TIFF, WebP or PNM image, or its "
                      "header is cut short");
  if (size->width <= 0 || size->height <= 0)
    throw RecordError(name + ": image header gives an empty size");
  if (size->width > max_pixels / size->height) throw too_large(size->width, size->height);
  Bytes d{bytes};
  if (is_png(d) && !png_complete(d)) throw RecordError(name + ": truncated PNG (no IEND chunk)");
  if (is_jpeg(d) && !jpeg_complete(d))
    throw RecordError(name + ": truncated JPEG (no end-of-image marker)");

  cv::Mat raw;
  try {
    if (is_png(d)) {
      raw = decode_png(bytes, name);
    } else {
      // imdecode does not write to its input; the Mat header only wraps it.
      cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
      raw = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
    }
  } catch (const cv::Exception& e) {
    throw RecordError(name + ": cannot decode: " + e.what());
  }
  if (raw.empty()) throw RecordError(name + ": cannot decode (not an image OpenCV can read)");
  if (static_cast<std::int64_t>(raw.cols) > max_pixels / raw.rows)
    throw too_large(raw.cols, raw.rows);
  // IMREAD_UNCHANGED keeps alpha and depth but skips EXIF orientation.
  cv::Mat gray = to_gray8(raw);
  return apply_orientation(gray, exif_orientation(bytes));
}

namespace {
// The memory that image reads in flight may hold at once, for the whole
// process: a file's bytes plus its decoded pixels (estimated from the header).
// A read that would pass the budget waits until others finish; one alone
// always proceeds. So peak memory does not grow with --threads: four
// 1-GiB files read by four threads are read one after another.
class ReadBudget {
 public:
  explicit ReadBudget(std::int64_t cap) : cap_(cap) {}
  void acquire(std::int64_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    freed_.wait(lock, [&] { return used_ == 0 || used_ + n <= cap_; });
    used_ += n;
  }
  void release(std::int64_t n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used_ -= n;
    }
    freed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  std::int64_t used_ = 0;
  const std::int64_t cap_;
};

ReadBudget& read_budget() {
  static ReadBudget budget(kImageReadBudgetBytes);
  return budget;
}

// Reads up to n bytes at the file's current offset into `into` (appended).
// Throws RecordError naming the path on a read error.
void read_bytes(int fd, std::size_t n, std::string& into, const std::string& path) {
  const std::size_t start = into.size();
  into.resize(start + n);
  std::size_t done = 0;
  while (done < n) {
    ssize_t got = ::read(fd, into.data() + start + done, n - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw RecordError(path + ": cannot read: " + std::strerror(errno));
    if (got == 0) break;  // the file shrank since fstat
    done += static_cast<std::size_t>(got);
  }
  into.resize(start + done);
}

std::string not_regular(const std::string& path, mode_t mode) {
  const char* what = S_ISDIR(mode)    ? "is a directory"
                     : S_ISFIFO(mode) ? "is a FIFO, not a regular file"
                     : S_ISCHR(mode) || S_ISBLK(mode) ? "is a device, not a regular file"
                     : S_ISSOCK(mode)                 ? "is a socket, not a regular file"
                                                      : "is not a regular file";
  return path + ": " + what;
}
}  // namespace

cv::Mat read_gray(const std::string& path, std::int64_t max_pixels) {
  // open() would stop at the NUL and open another file; a message holding
  // the path would be cut there too (what() is a C string).
  if (path.find('\0') != std::string::npos) throw RecordError("image path contains a NUL byte");
  // Only a regular file is read (symlinks followed): a device such as
  // /dev/zero has no end, and opening a FIFO waits for a writer. stat()
  // refuses them before any open; O_NONBLOCK and fstat() close the race
  // with a file replaced in between.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw RecordError(path + ": cannot open: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw RecordError(not_regular(path, st.st_mode));
  struct Fd {
    int fd;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  } f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0) throw RecordError(path + ": cannot open: " + std::strerror(errno));
  if (::fstat(f.fd, &st) != 0) throw RecordError(path + ": cannot read: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw RecordError(not_regular(path, st.st_mode));
  if (st.st_size > kMaxImageFileBytes)
    throw RecordError(path + ": file of " + std::to_string(st.st_size) +
                      " bytes is larger than the maximum of " + std::to_string(kMaxImageFileBytes) +
                      " bytes");
  const auto size = static_cast<std::size_t>(st.st_size);
  // The header first: a file that is no image, or whose header names too
  // many pixels, is refused after 256 KiB, however large it is.
  std::string bytes;
  read_bytes(f.fd, std::min<std::size_t>(size, 256 << 10), bytes, path);
  if (bytes.empty()) throw RecordError(path + ": empty file");
  std::int64_t pixels = 0;
  if (auto dims = peek_image_size(bytes)) {
    if (dims->width <= 0 || dims->height <= 0 || dims->width > max_pixels / dims->height)
      return decode_gray(bytes, path, max_pixels);  // throws: empty, or too many pixels
    pixels = dims->width * dims->height;
  } else if (!image_signature(bytes) || bytes.size() == size) {
    return decode_gray(bytes, path, max_pixels);  // throws its "not an image" error
  }
  // The rest, within the process's read budget: the bytes, and the decoded
  // pixels (at most 4 channels of 16 bits, then the 8-bit gray copy).
  const std::int64_t need = static_cast<std::int64_t>(size) + pixels * 9;
  read_budget().acquire(need);
  struct Release {
    std::int64_t n;
    ~Release() { read_budget().release(n); }
  } release{need};
  read_bytes(f.fd, size - bytes.size(), bytes, path);
  return decode_gray(bytes, path, max_pixels);
}

void write_png(const std::string& path, const cv::Mat& img) {
  std::vector<unsigned char> buf;
  try {
    if (!cv::imencode(".png", img, buf)) throw FatalError(path + ": cannot encode PNG");
  } catch (const cv::Exception& e) {
    throw FatalError(path + ": cannot encode PNG: " + e.what());
  }
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

}  // namespace edan
