#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "edan/error.hpp"
#include "edan/record.hpp"
#include "edan/table.hpp"

namespace {

// Runs a TableWriter over the records (JSON lines) and returns what it wrote.
std::string table_of(const std::vector<std::string>& lines, edan::TableOptions opt = {},
                     std::size_t* errors = nullptr) {
  char* buf = nullptr;
  std::size_t size = 0;
  std::FILE* out = open_memstream(&buf, &size);
  {
    edan::TableWriter table(out, opt);
    std::size_t n = 0;
    for (const auto& l : lines) table.add(edan::parse_line(l, ++n));
    table.finish();
    if (errors) *errors = table.errors();
  }
  std::fclose(out);
  std::string text(buf, size);
  std::free(buf);
  return text;
}

const std::string kFace =
    R"({"image":"a.jpg","face":1,"box":[10,20,30,40],"score":0.98,)"
    R"("pred":{"label":"happy","probs":{"neutral":0.1,"happy":0.9},"landmarks":[]}})";

}  // namespace

TEST(Table_Cell, csvQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(edan::TableWriter::cell("plain.jpg", ','), "plain.jpg");
  EXPECT_EQ(edan::TableWriter::cell("a,b.jpg", ','), "\"a,b.jpg\"");
  EXPECT_EQ(edan::TableWriter::cell("say \"hi\"", ','), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(edan::TableWriter::cell("two\nlines", ','), "\"two\nlines\"");
}

TEST(Table_Cell, tsvEscapesTabsNewlinesBackslashes) {
  EXPECT_EQ(edan::TableWriter::cell("a\tb\nc\\d", '\t'), "a\\tb\\nc\\\\d");
  EXPECT_EQ(edan::TableWriter::cell("a,b", '\t'), "a,b");
}

TEST(Table_Writer, oneRowPerFaceWithClassColumnsOfTheFirstPrediction) {
  const auto text = table_of({kFace});
  EXPECT_EQ(text,
            "image,face,box_x,box_y,box_w,box_h,score,label,pred,p_neutral,p_happy,error\n"
            "a.jpg,1,10,20,30,40,0.98,,happy,0.1,0.9,\n");
}

TEST(Table_Writer, rowsBeforeThePredictionsWaitForTheColumnsAndKeepTheirOrder) {
  std::size_t errors = 0;
  const auto text = table_of({R"({"image":"bad.jpg","error":"no face found"})", kFace}, {}, &errors);
  EXPECT_EQ(text,
            "image,face,box_x,box_y,box_w,box_h,score,label,pred,p_neutral,p_happy,error\n"
            "bad.jpg,,,,,,,,,,,no face found\n"
            "a.jpg,1,10,20,30,40,0.98,,happy,0.1,0.9,\n");
  EXPECT_EQ(errors, 1u);
}

TEST(Table_Writer, aClassWithoutAColumnIsAnErrorCellNotDropped) {
  std::size_t errors = 0;
  const auto text = table_of(
      {kFace, R"({"image":"b.jpg","pred":{"label":"fear","probs":{"neutral":0.5,"fear":0.5}}})"},
      {}, &errors);
  EXPECT_NE(text.find("b.jpg,,,,,,,,fear,0.5,,class 'fear' is not a column"), std::string::npos)
      << text;
  EXPECT_EQ(errors, 1u);
}

TEST(Table_Writer, landmarksFieldsAndNoHeader) {
  edan::TableOptions opt;
  opt.header = false;
  opt.landmarks = true;
  opt.fields = {"dataset"};
  std::string lm = "[";
  for (int i = 0; i < 68; ++i) lm += (i ? "," : "") + std::string("[") + std::to_string(i) + ",1.5]";
  lm += "]";
  const auto text = table_of(
      {R"({"image":"c.png","dataset":"ck","label":"sad","landmarks":)" + lm + "}"}, opt);
  EXPECT_EQ(text.rfind("c.png,,,,,,,sad,,ck,0,1.5,1,1.5,", 0), 0u) << text;
  EXPECT_NE(text.find(",67,1.5,\n"), std::string::npos) << text;
}

TEST(Table_Writer, emptyInputWritesTheHeader) {
  EXPECT_EQ(table_of({}), "image,face,box_x,box_y,box_w,box_h,score,label,pred,error\n");
}

TEST(Table_Format, csvOrTsv) {
  EXPECT_EQ(edan::parse_table_format("csv"), ',');
  EXPECT_EQ(edan::parse_table_format("tsv"), '\t');
  EXPECT_THROW(edan::parse_table_format("xlsx"), edan::UsageError);
}
