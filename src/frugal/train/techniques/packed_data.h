// Packed training data as a technique ([data] kind = "packed"): its checkpoint state is the pack's
// fingerprint, so a run resumed against another pack at the same path is refused (exit 2) instead of
// silently training on other samples; at run_end it adds "packed_data" to the summary (samples,
// blocks decompressed in this process, cache, shuffle buffer, loader threads).
#pragma once

#include <memory>
#include <string>

#include "frugal/data/packed.h"
#include "frugal/train/technique.h"

namespace frugal::train {

class PackedDataRecord : public Technique {
 public:
  PackedDataRecord(std::shared_ptr<const data::PackedSource> source, std::string path, uint64_t fingerprint,
                   int64_t shuffle_buffer, int workers)
      : source_(std::move(source)), path_(std::move(path)), fingerprint_(fingerprint),
        shuffle_buffer_(shuffle_buffer), workers_(workers) {}
  std::string name() const override { return "packed_data"; }
  EventSet events() const override { return event_set({Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  std::string fingerprint_text() const;
  std::shared_ptr<const data::PackedSource> source_;
  std::string path_;
  uint64_t fingerprint_;
  int64_t shuffle_buffer_;
  int workers_;
};

}  // namespace frugal::train
