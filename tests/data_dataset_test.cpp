#include <filesystem>
#include <fstream>
#include <set>

#include "qvit/dataset.h"
#include "qvit/error.h"
#include "test_util.h"

using namespace qvit;
namespace fs = std::filesystem;

namespace {
void touch(const fs::path& p) { std::ofstream(p) << "x"; }

template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    FAIL() << "expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Dataset, ImageFolderSortsClassesAndFiles) {
  fs::path root = test::temp_dir();
  fs::create_directories(root / "b_cls");
  fs::create_directories(root / "a_cls");
  fs::create_directories(root / ".hidden");
  touch(root / "b_cls" / "2.jpg");
  touch(root / "b_cls" / "1.jpg");
  touch(root / "a_cls" / "z.png");
  touch(root / "a_cls" / ".DS_Store");
  Dataset ds = image_folder(root.string());
  ASSERT_EQ(ds.classes, (std::vector<std::string>{"a_cls", "b_cls"}));
  ASSERT_EQ(ds.samples.size(), 3u);
  EXPECT_EQ(fs::path(ds.samples[0].path).filename(), "z.png");
  EXPECT_EQ(ds.samples[0].label, 0);
  EXPECT_EQ(fs::path(ds.samples[1].path).filename(), "1.jpg");
  EXPECT_EQ(ds.samples[2].label, 1);
}

TEST(Dataset, ImageFolderErrors) {
  fs::path root = test::temp_dir();
  expect_error([&] { image_folder((root / "nope").string()); }, "no such folder");
  expect_error([&] { image_folder(root.string()); }, "no class folders");
  fs::create_directories(root / "c");
  expect_error([&] { image_folder(root.string()); }, "hold no images");
}

TEST(Dataset, LabeledFolder) {
  fs::path dir = test::temp_dir();
  touch(dir / "img_1.JPEG");
  touch(dir / "img_2.JPEG");
  fs::path labels = dir.parent_path() / (dir.filename().string() + "_labels.txt");
  std::ofstream(labels) << "img_1.JPEG 5\r\nimg_2.JPEG 999\n\n";
  Dataset ds = labeled_folder(dir.string(), labels.string(), 1000);
  ASSERT_EQ(ds.samples.size(), 2u);
  EXPECT_EQ(ds.samples[0].label, 5);
  EXPECT_EQ(ds.samples[1].label, 999);

  std::ofstream(labels) << "img_1.JPEG 5\nimg_2.JPEG 1000\n";
  expect_error([&] { labeled_folder(dir.string(), labels.string(), 1000); },
               "label 1000 out of range");
  std::ofstream(labels) << "img_1.JPEG five\n";
  expect_error([&] { labeled_folder(dir.string(), labels.string(), 1000); }, "expected 'FILE LABEL'");
  std::ofstream(labels) << "img_1.JPEG 1\n";
  expect_error([&] { labeled_folder(dir.string(), labels.string(), 1000); },
               "image 'img_2.JPEG' has no label");
  std::ofstream(labels) << "img_1.JPEG 1\nimg_2.JPEG 2\nimg_3.JPEG 3\n";
  expect_error([&] { labeled_folder(dir.string(), labels.string(), 1000); },
               "names 1 files that are not in");
  EXPECT_EQ(labeled_folder(dir.string(), labels.string(), 1000, true).samples.size(), 2u);
  expect_error([&] { labeled_folder(dir.string(), (dir / "none.txt").string(), 1000); },
               "cannot open label file");
}

TEST(Dataset, SampleIndicesDeterministicSubset) {
  auto a = sample_indices(1000, 500, 0), b = sample_indices(1000, 500, 0), c = sample_indices(1000, 500, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<size_t> s(a.begin(), a.end());
  EXPECT_EQ(s.size(), 500u);
  EXPECT_LT(*s.rbegin(), 1000u);
}

TEST(Dataset, LoaderDeliversInOrderAndReportsBadImages) {
  QVIT_REQUIRE_DATA_PATH(root, "imagenet-sample");
  Dataset ds = image_folder(root);
  std::vector<size_t> order = {5, 3, 900, 1, 7};
  PreprocessConfig pre;
  BatchLoader loader(ds, order, pre, 2, 2, 1);
  EXPECT_EQ(loader.num_batches(), 3u);
  Batch b;
  std::vector<size_t> seen;
  while (loader.next(b)) {
    EXPECT_EQ(b.images.dim(0), static_cast<int64_t>(b.index.size()));
    for (size_t i : b.index) seen.push_back(i);
  }
  EXPECT_EQ(seen, order);

  // A corrupt image in the middle: next() rethrows an error naming it.
  fs::path dir = test::temp_dir();
  fs::create_directories(dir / "c0");
  fs::copy_file(ds.samples[0].path, dir / "c0" / "a.JPEG");
  std::ofstream(dir / "c0" / "b.JPEG") << "not an image";
  Dataset bad = image_folder(dir.string());
  BatchLoader bl(bad, {}, pre, 1, 2, 2);
  expect_error([&] { while (bl.next(b)) {} }, "b.JPEG");
}
