// [dist] and [federated] (job_dist.h; the techniques in train/parallel/).
#include "frugal/train/job_dist.h"

#include "frugal/base/error.h"
#include "frugal/train/job_section.h"

namespace frugal::train {

using job_file::Section;

const char* name_of(Compression c) {
  switch (c) {
    case Compression::none: return "none";
    case Compression::bf16: return "bf16";
    case Compression::topk: return "topk";
    case Compression::powersgd: return "powersgd";
    case Compression::local_sgd: return "local_sgd";
    case Compression::sign: return "sign";
  }
  return "?";
}

namespace {

void parse_dist(Section& s, DistSpec& d) {
  d.backend = s.get_string("backend", "auto", {"auto", "local", "mpi"});
  d.compression = s.get_enum("compression", Compression::none,
                             {{"none", Compression::none},
                              {"bf16", Compression::bf16},
                              {"topk", Compression::topk},
                              {"powersgd", Compression::powersgd},
                              {"local_sgd", Compression::local_sgd},
                              {"sign", Compression::sign}});
  d.bucket_mib = s.get_double("bucket_mib", 4, 0, 4096, /*min_open=*/true);
  d.topk_ratio = s.get_double("topk_ratio", 0.01, 0, 1, /*min_open=*/true);
  d.error_feedback = s.get_bool("error_feedback", true);
  d.powersgd_rank = s.get_int("powersgd_rank", 4, 1, 4096);
  d.warmup_steps = s.get_int("warmup_steps", 0, 0, INT64_MAX / 4);
  d.local_sgd_every = s.get_int("local_sgd_every", 8, 1, 1 << 30);
  // A key of another method is a mistake, not a no-op.
  auto only_for = [&](const char* key, Compression method) {
    if (s.has(key) && d.compression != method)
      s.fail_key(key, std::string("is for compression = \"") + name_of(method) + "\", not \"" +
                          name_of(d.compression) + "\"");
  };
  only_for("topk_ratio", Compression::topk);
  only_for("powersgd_rank", Compression::powersgd);
  only_for("local_sgd_every", Compression::local_sgd);
  if (d.compression == Compression::none) {
    for (const char* key : {"error_feedback", "warmup_steps"})
      if (s.has(key)) s.fail_key(key, "is for a compression method; compression = \"none\" sends exact sums");
  }
  s.check_unknown();
}

void parse_federated(Section& s, FederatedSpec& f, const JobSpec& job, const std::string& path) {
  f.enabled = true;
  f.algorithm = s.get_enum("algorithm", FederatedAlgorithm::fedavg,
                           {{"fedavg", FederatedAlgorithm::fedavg}, {"fedprox", FederatedAlgorithm::fedprox}});
  f.clients = s.get_int("clients", 10, 1, 1 << 20);
  f.clients_per_round = s.get_int("clients_per_round", f.clients, 1, 1 << 20);
  if (f.clients_per_round > f.clients)
    s.fail_key("clients_per_round", "expected at most clients = " + std::to_string(f.clients) + ", got " +
                                        std::to_string(f.clients_per_round));
  f.rounds = s.get_int("rounds", 50, 1, 1 << 30);
  f.local_epochs = s.get_int("local_epochs", 1, 1, 1 << 20);
  f.split = s.get_enum("split", FederatedSplit::iid, {{"iid", FederatedSplit::iid}, {"dirichlet", FederatedSplit::dirichlet}});
  f.alpha = s.get_double("alpha", 0.3, 0, 1e6, /*min_open=*/true);
  if (s.has("alpha") && f.split != FederatedSplit::dirichlet)
    s.fail_key("alpha", "is for split = \"dirichlet\"");
  f.mu = s.get_double("mu", 0.01, 0, 1e6);
  if (s.has("mu") && f.algorithm != FederatedAlgorithm::fedprox) s.fail_key("mu", "is for algorithm = \"fedprox\"");
  f.target_accuracy = s.get_double("target_accuracy", 0, 0, 1);
  s.check_unknown();
  if (job.data.kind == DataKind::text)
    throw InputError(path + ": [federated] is for classification data (clients hold labelled samples), not text");
}

}  // namespace

void parse_dist_sections(toml::table& root, JobSpec& job, const std::string& path,
                         const std::set<std::string>& overridden) {
  Section dist(path, "dist", root["dist"].as_table(), &overridden);
  parse_dist(dist, job.dist);
  if (toml::table* t = root["federated"].as_table()) {
    Section s(path, "federated", t, &overridden);
    parse_federated(s, job.federated, job, path);
  }
}

}  // namespace frugal::train
