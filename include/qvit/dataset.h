// Datasets (ImageFolder, or a flat folder plus a "FILE LABEL" list) and a batch loader that
// decodes and preprocesses on background threads while the model computes. Memory stays bounded:
// at most `prefetch` decoded batches wait in the queue.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "qvit/image.h"
#include "qvit/tensor.h"

namespace qvit {

struct Sample {
  std::string path;
  int label = -1;  // -1: unknown
};

struct Dataset {
  std::string root;
  std::vector<Sample> samples;
  std::vector<std::string> classes;  // ImageFolder: sorted class folder names
};

// ROOT/<class>/<image>: classes are the sorted sub-folder names, label = index in that order.
// Hidden files are skipped; non-image files are caught when decoded. Errors: not a folder, no
// class folders, no images.
Dataset image_folder(const std::string& root);

// Images directly in `dir`, labels from `label_file` lines "FILE LABEL" (e.g. ILSVRC2012 val).
// Errors: a malformed line, a label outside [0, num_classes), an image in `dir` without a label,
// and -- unless allow_missing -- a label line naming a file that is not in `dir` (allow_missing
// evaluates the images present, e.g. a 5,000-image subset with the 50,000-line val list).
Dataset labeled_folder(const std::string& dir, const std::string& label_file, int num_classes,
                       bool allow_missing = false);

// label_file empty -> image_folder(dir), else labeled_folder.
Dataset open_dataset(const std::string& dir, const std::string& label_file, int num_classes,
                     bool allow_missing = false);

// A deterministic subset: `count` samples drawn without replacement with `seed` (a fixed
// Fisher-Yates over a 64-bit LCG, so the same on every platform); `exclude` complements it.
std::vector<size_t> sample_indices(size_t n, size_t count, uint64_t seed);

struct Batch {
  Tensor images;               // [b, 3, crop, crop]
  std::vector<int> labels;     // b
  std::vector<size_t> index;   // indices into Dataset::samples
};

class BatchLoader {
 public:
  // `order`: which samples, in which order (empty = all, in dataset order).
  BatchLoader(const Dataset& ds, std::vector<size_t> order, const PreprocessConfig& pre,
              int batch_size, int workers = 2, int prefetch = 2);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Fills the next batch in order; false at the end. Rethrows a decode error (naming the file).
  bool next(Batch& out);
  size_t num_batches() const { return num_batches_; }
  size_t num_samples() const { return order_.size(); }

 private:
  void worker_loop();
  Batch make_batch(size_t k) const;

  const Dataset& ds_;
  std::vector<size_t> order_;
  PreprocessConfig pre_;
  int batch_size_;
  int prefetch_;
  size_t num_batches_;

  std::mutex mu_;
  std::condition_variable cv_;
  size_t next_claim_ = 0;    // next batch a worker will build
  size_t next_deliver_ = 0;  // next batch next() returns
  std::map<size_t, Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace qvit
