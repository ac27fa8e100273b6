#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "edan/error.hpp"
#include "edan/record.hpp"

using edan::Record;

TEST(Record_ParseLine, objectKeepsKeyOrder) {
  Record r = edan::parse_line(R"({"z":1,"image":"a.png","b":[1,2],"a":{"x":null}})", 1);
  EXPECT_EQ(edan::to_line(r), R"({"z":1,"image":"a.png","b":[1,2],"a":{"x":null}})");
}

TEST(Record_ParseLine, barePathBecomesImage) {
  Record r = edan::parse_line("photos/my face.jpg", 3);
  EXPECT_EQ(edan::to_line(r), R"({"image":"photos/my face.jpg"})");
}

TEST(Record_ParseLine, malformedJsonNamesLine) {
  Record r = edan::parse_line(R"({"image": "a.png", )", 42, "in.jsonl");
  ASSERT_TRUE(edan::has_error(r));
  std::string err(r["error"].as_string());
  EXPECT_NE(err.find("in.jsonl:42:"), std::string::npos) << err;
  EXPECT_EQ(r["line"].as_int64(), 42);
}

TEST(Record_ParseLine, nanAndInfinityKeepTheRecordAndNameTheirFields) {
  // What Python's json.dumps writes; a "NaN" inside a string is text.
  Record r = edan::parse_line(
      R"({"image":"a NaN.png","box":[1,NaN,3,-Infinity],"pred":{"score":Infinity}})", 7, "in");
  ASSERT_TRUE(edan::has_error(r));
  EXPECT_EQ(r["image"].as_string(), "a NaN.png");
  EXPECT_EQ(edan::to_text(r["box"]), "[1,null,3,null]");
  EXPECT_TRUE(r["pred"].as_object()["score"].is_null());
  EXPECT_EQ(std::string(r["error"].as_string()),
            "in:7: 'box[1]', 'box[3]', 'pred.score' are NaN or Infinity, which JSON cannot hold "
            "(from Python, write json.dumps(..., allow_nan=False) or None)");
  // Still malformed otherwise: the plain error.
  Record bad = edan::parse_line(R"({"image":"a.png","x":NaN,)", 8, "in");
  EXPECT_FALSE(bad.contains("image"));
  EXPECT_EQ(bad["line"].as_int64(), 8);
}

TEST(Record_ParseLine, nonObjectIsError) {
  Record r = edan::parse_line("[1,2,3]", 7);
  EXPECT_TRUE(edan::has_error(r));
}

TEST(Record_Reader, skipsBlankLinesAndBoundsLongLines) {
  std::string text = "{\"a\":1}\n\n   \n" + std::string(100, 'x') + "\n{\"b\":2}";
  std::FILE* f = fmemopen(text.data(), text.size(), "r");
  edan::RecordReader reader(f, "mem", /*max_line_bytes=*/50);
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(edan::to_line(r), R"({"a":1})");
  ASSERT_TRUE(reader.next(r));
  EXPECT_TRUE(edan::has_error(r));
  EXPECT_EQ(r["line"].as_int64(), 4);
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(edan::to_line(r), R"({"b":2})");
  EXPECT_FALSE(reader.next(r));
  std::fclose(f);
}

TEST(Record_Fields, shapeRoundTrip) {
  edan::Shape s;
  for (int i = 0; i < 68; ++i) s.push_back({i * 1.25, 100 - i * 0.5});
  Record r;
  r["landmarks"] = edan::shape_to_json(s);
  Record back = edan::parse_line(edan::to_line(r), 1);
  auto got = edan::get_shape(back, "landmarks");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 68u);
  for (int i = 0; i < 68; ++i) {
    EXPECT_DOUBLE_EQ((*got)[i].x, s[i].x);
    EXPECT_DOUBLE_EQ((*got)[i].y, s[i].y);
  }
}

TEST(Record_Fields, malformedShapeThrows) {
  Record r = edan::parse_line(R"({"landmarks":[[1,2],[3,4]]})", 1);
  EXPECT_THROW(edan::get_shape(r, "landmarks"), edan::RecordError);
  Record s = edan::parse_line(R"({"landmarks":"nope"})", 1);
  EXPECT_THROW(edan::get_shape(s, "landmarks"), edan::RecordError);
  Record t = edan::parse_line(R"({"x":"str"})", 1);
  EXPECT_THROW(edan::get_number(t, "x"), edan::RecordError);
  EXPECT_FALSE(edan::get_shape(t, "landmarks"));
}

TEST(Record_Fields, boxIsFourNumbersWithPositiveSize) {
  auto b = edan::get_box(edan::parse_line(R"({"box":[1,2.5,30,40]})", 1));
  ASSERT_TRUE(b);
  EXPECT_DOUBLE_EQ(b->x, 1);
  EXPECT_DOUBLE_EQ(b->y, 2.5);
  EXPECT_DOUBLE_EQ(b->w, 30);
  EXPECT_DOUBLE_EQ(b->h, 40);
  EXPECT_FALSE(edan::get_box(edan::parse_line(R"({"image":"a.png"})", 1)));
  for (const char* bad : {R"({"box":null})", R"({"box":[1,2,3]})", R"({"box":[1,2,"3",4]})",
                          R"({"box":[1,2,0,4]})", R"({"box":[1,2,3,-4]})", R"({"box":"0 0 1 1"})"})
    EXPECT_THROW(edan::get_box(edan::parse_line(bad, 1)), edan::RecordError) << bad;
}

TEST(Record_ToLine, numbersReadable) {
  Record r;
  r["a"] = 63.0;
  r["b"] = 31.25;
  r["c"] = 7;
  r["d"] = 1e-7;
  r["e"] = std::nan("");
  r["s"] = "q\"uote";
  EXPECT_EQ(edan::to_line(r), R"({"a":63.0,"b":31.25,"c":7,"d":1e-07,"e":null,"s":"q\"uote"})");
}

TEST(Record_ParseLine, invalidUtf8IsKeptByteForByte) {
  // A file name that is not UTF-8, as a bare path and inside a JSON string:
  // written back unchanged, and read again as the same record.
  Record bare = edan::parse_line("a\xff\xfe.png", 1);
  ASSERT_FALSE(edan::has_error(bare));
  EXPECT_EQ(edan::to_line(bare), "{\"image\":\"a\xff\xfe.png\"}");
  Record back = edan::parse_line(edan::to_line(bare), 2);
  ASSERT_FALSE(edan::has_error(back));
  EXPECT_EQ(back, bare);
}

TEST(Record_RecordReader, overlongLineIsAnErrorAndReadingGoesOn) {
  std::string text = std::string(100, 'x') + "\n{\"a\":1}\n";
  std::FILE* in = fmemopen(text.data(), text.size(), "rb");
  ASSERT_NE(in, nullptr);
  edan::RecordReader reader(in, "t", /*max_line_bytes=*/10);
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(edan::to_line(r), R"({"error":"t:1: line longer than 10 bytes","line":1})");
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(edan::to_line(r), R"({"a":1})");
  EXPECT_FALSE(reader.next(r));
  std::fclose(in);
}

TEST(Record_ParseLine, doublesAreReadCorrectlyRounded) {
  // Boost.JSON 1.81's own parser reads this shortest form back 1 ULP off;
  // the value must be the correctly rounded one, and a record must come back
  // from to_line unchanged, however often it is passed on.
  const char* line =
      R"({"d":-9.223372073709551e+30,"i":-9223372073709551616073709551615,"n":1e400})";
  auto r = edan::parse_line(line, 1, "t");
  ASSERT_FALSE(edan::has_error(r));
  EXPECT_EQ(r.at("d").as_double(), -9.223372073709551e+30);
  EXPECT_EQ(r.at("i").as_double(), -9223372073709551616073709551615.0);
  EXPECT_TRUE(std::isinf(r.at("n").as_double()));  // out of range: the parser's value
  auto once = edan::to_line(r);
  EXPECT_EQ(edan::to_line(edan::parse_line(once, 1, "t")), once);
  // Integers stay integers.
  auto k = edan::parse_line(R"({"a":-3,"b":18446744073709551615})", 1, "t");
  EXPECT_TRUE(k.at("a").is_int64());
  EXPECT_TRUE(k.at("b").is_uint64());
}

TEST(Record_GuardRecords, aRecordErrorMarksEveryRecordAndFatalOnesEndTheRun) {
  edan::Record a = edan::parse_line("{\"n\":1}", 1), b = edan::parse_line("{\"n\":2}", 2);
  std::vector<edan::Record*> both{&a, &b};
  EXPECT_TRUE(edan::guard_records(both, [] {}));
  EXPECT_FALSE(edan::has_error(a));
  EXPECT_FALSE(edan::guard_records(both, [] { throw edan::RecordError("x.png: no face found"); }));
  EXPECT_EQ(a.at("error").as_string(), "x.png: no face found");
  EXPECT_EQ(b.at("error").as_string(), "x.png: no face found");
  edan::Record c = edan::parse_line("{\"n\":3}", 3);
  EXPECT_THROW(edan::guard_records({&c}, [] { throw edan::FatalError("model broke"); }),
               edan::FatalError);
  EXPECT_THROW(edan::guard_records({&c}, [] { throw edan::BrokenPipe(); }), edan::BrokenPipe);
  EXPECT_FALSE(edan::has_error(c));
  EXPECT_FALSE(edan::guard_records({&c}, [] { throw edan::RecordError(""); }));
  EXPECT_FALSE(c.at("error").as_string().empty());
}
