// edan-index: list a dataset's images as records (one per image).
#include "edan/cli.hpp"
#include "edan/dataset.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-index",
                       "List the images of datasets as records with label, dataset, "
                       "subject, split and landmarks where the layout has them.",
                       "DIR..."};
  edan::IndexOptions opt;
  tool.add({"-l", "--layout"}, "L",
           "folders, jaffe, ckplus, fer2013-csv, affectnet-csv, 300w, ferplus or unlabelled "
           "(default: folders)",
           &opt.layout);
  tool.add({"--dataset"}, "NAME", "dataset name in every record (default: from the layout)",
           &opt.dataset);
  tool.add({"--out-dir"}, "DIR", "fer2013-csv: directory the PNGs are written to", &opt.out);
  tool.add({"--images"}, "DIR",
           "affectnet-csv: root of subDirectory_filePath (default: the CSV's directory)",
           &opt.images);
  tool.add({"--pts-base"}, "B",
           "300w: subtracted from .pts coordinates, 1 for the official 1-based files "
           "(default: 1)",
           &opt.pts_base);
  tool.add_output();
  tool.positional("DIR...", &opt.roots, /*min=*/1);
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    return tool.generate(
        [&] { edan::index_dataset(opt, [&](const edan::Record& r) { tool.emit(r); }); });
  });
}
