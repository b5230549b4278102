// BatchLoader: worker threads claim whole batches in order, decode + preprocess them, and park
// them in a small ordered map; next() hands them out in order. At most `prefetch` batches are
// built ahead of the consumer, so memory stays bounded whatever the dataset size.
#include <algorithm>

#include "qvit/dataset.h"
#include "qvit/error.h"

namespace qvit {

BatchLoader::BatchLoader(const Dataset& ds, std::vector<size_t> order, const PreprocessConfig& pre,
                         int batch_size, int workers, int prefetch)
    : ds_(ds), order_(std::move(order)), pre_(pre), batch_size_(batch_size),
      prefetch_(std::max(1, prefetch)) {
  if (batch_size_ <= 0) fail("loader", "batch size must be positive, got {}", batch_size_);
  if (order_.empty() && !ds_.samples.empty()) {
    order_.resize(ds_.samples.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  }
  for (size_t i : order_)
    if (i >= ds_.samples.size()) fail("loader", "sample index {} out of range", i);
  num_batches_ = (order_.size() + batch_size_ - 1) / batch_size_;
  workers = std::clamp(workers, 1, 8);
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

Batch BatchLoader::make_batch(size_t k) const {
  const size_t begin = k * batch_size_;
  const size_t end = std::min(order_.size(), begin + batch_size_);
  const int64_t b = static_cast<int64_t>(end - begin), crop = pre_.crop;
  Batch out;
  out.images = Tensor({b, 3, crop, crop});
  for (size_t i = begin; i < end; ++i) {
    const Sample& s = ds_.samples[order_[i]];
    Image img = decode_image_file(s.path);
    preprocess_image(img, pre_, out.images.f32() + (i - begin) * 3 * crop * crop);
    out.labels.push_back(s.label);
    out.index.push_back(order_[i]);
  }
  return out;
}

void BatchLoader::worker_loop() {
  for (;;) {
    size_t k;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        return stop_ || error_ || next_claim_ >= num_batches_ ||
               next_claim_ < next_deliver_ + static_cast<size_t>(prefetch_);
      });
      if (stop_ || error_ || next_claim_ >= num_batches_) return;
      k = next_claim_++;
    }
    try {
      Batch b = make_batch(k);
      std::lock_guard<std::mutex> lk(mu_);
      ready_.emplace(k, std::move(b));
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lk(mu_);
  if (next_deliver_ >= num_batches_) return false;
  cv_.wait(lk, [&] { return error_ || ready_.count(next_deliver_); });
  auto it = ready_.find(next_deliver_);
  if (it == ready_.end()) std::rethrow_exception(error_);
  out = std::move(it->second);
  ready_.erase(it);
  ++next_deliver_;
  lk.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace qvit
