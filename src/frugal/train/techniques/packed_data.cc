// PackedDataRecord (packed_data.h): the pack's fingerprint checked on resume, its figures in the summary.
#include "frugal/train/techniques/packed_data.h"

#include <cstdio>

#include "frugal/train/summary.h"

namespace frugal::train {

std::string PackedDataRecord::fingerprint_text() const {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", (unsigned long long)fingerprint_);
  return text;
}

void PackedDataRecord::on(Event event, TrainState& state) {
  if (!state.summary) return;
  state.summary->techniques["packed_data"] = {{"samples", source_->size()},
                                              {"blocks_decompressed", source_->blocks_decompressed()},
                                              {"cache_blocks", source_->cache_blocks()},
                                              {"shuffle_buffer", shuffle_buffer_},
                                              {"workers", workers_},
                                              {"fingerprint", fingerprint_text()}};
}

void PackedDataRecord::save_state(TechniqueState& out) const { out.put_text("fingerprint", fingerprint_text()); }

void PackedDataRecord::load_state(const TechniqueState& in) {
  if (in.empty()) return;
  const std::string saved = in.text("fingerprint");
  if (saved != fingerprint_text())
    in.fail("the checkpoint was trained on the pack with fingerprint " + saved + ", but " + path_ + " now holds " +
            fingerprint_text() + " (repacked or replaced): resuming would train on other samples; restore that pack "
            "or start a new run in another --out directory");
}

}  // namespace frugal::train
