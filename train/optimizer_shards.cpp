#include "train/optimizer_shards.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>

#include "qalign/base/error.h"
#include "qalign/io/safetensors.h"

namespace qalign::train {

namespace fs = std::filesystem;

std::vector<std::string> optimizer_files(const std::string& dir) {
  const auto whole = fs::path(dir) / "optimizer.safetensors";
  if (fs::exists(whole)) return {whole.string()};
  static const std::regex shard(R"(optimizer\.rank(\d+)-of-(\d+)\.safetensors)");
  int64_t world = -1;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const auto name = e.path().filename().string();
    if (!std::regex_match(name, m, shard)) continue;
    const int64_t w = std::stoll(m[2]);
    if (world >= 0 && w != world) fail(e.path().string(), "", "optimizer shards of two world sizes in one checkpoint");
    world = w;
  }
  if (world <= 0) fail(dir, "optimizer.safetensors", "no optimizer state in the checkpoint");
  std::vector<std::string> files;
  for (int64_t r = 0; r < world; ++r) {
    const auto path =
        fs::path(dir) / ("optimizer.rank" + std::to_string(r) + "-of-" + std::to_string(world) + ".safetensors");
    if (!fs::exists(path)) fail(path.string(), "", "missing: the checkpoint's optimizer shards do not cover the model");
    files.push_back(path.string());
  }
  return files;
}

io::StateDict shard_contents(const io::StateDict& state, const std::vector<ShardRange>& ranges,
                             const std::vector<torch::Tensor>& masters) {
  io::StateDict out = state;
  for (size_t i = 0; i < ranges.size(); ++i) {
    out["master." + ranges[i].name] = masters[i].detach();
    out["offset." + ranges[i].name] = torch::tensor({ranges[i].offset}, torch::kInt64);
  }
  return out;
}

namespace {

struct Piece {
  size_t file = 0;
  int64_t offset = 0, numel = 0;
};

}  // namespace

io::StateDict read_optimizer_ranges(const std::string& dir, const std::vector<ShardRange>& want,
                                    const std::vector<torch::Tensor>& like) {
  std::vector<std::shared_ptr<io::SafetensorsFile>> files;
  std::map<std::string, std::vector<Piece>> pieces;
  bool with_masters = false;
  for (const auto& path : optimizer_files(dir)) {
    files.push_back(io::SafetensorsFile::open(path));
    const auto& f = *files.back();
    for (const auto& t : f.tensors()) {
      std::string name;
      if (t.name.rfind("master.", 0) == 0)
        name = t.name.substr(7);
      else if (t.name.rfind("exp_avg.", 0) == 0 && !f.contains("master." + t.name.substr(8)))
        name = t.name.substr(8);
      else
        continue;
      Piece p{files.size() - 1, 0, f.get(t.name).numel()};
      if (f.contains("offset." + name)) {
        const auto offset = f.get("offset." + name);
        if (offset.numel() != 1) fail(path, "offset." + name, "must hold one number");
        p.offset = offset.item<int64_t>();
      }
      pieces[name].push_back(p);
      with_masters = with_masters || t.name.rfind("master.", 0) == 0;
    }
  }
  io::StateDict out;
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& w = want[i];
    auto& have = pieces[w.name];
    std::sort(have.begin(), have.end(), [](const Piece& a, const Piece& b) { return a.offset < b.offset; });
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    torch::Tensor avg, avg_sq, master, step;
    bool all_masters = true;
    int64_t covered = w.offset;
    for (const auto& p : have) {
      const int64_t lo = std::max(covered, p.offset), hi = std::min(w.offset + w.numel, p.offset + p.numel);
      if (hi <= lo) continue;
      if (lo > covered) break;
      const auto& f = *files[p.file];
      const auto part = [&](const std::string& key) {
        return f.get(key + w.name).reshape({-1}).narrow(0, lo - p.offset, hi - lo);
      };
      if (f.contains("step." + w.name)) {
        if (!avg.defined()) {
          avg = torch::zeros({w.numel}, f32);
          avg_sq = torch::zeros({w.numel}, f32);
        }
        step = f.get("step." + w.name);
        avg.narrow(0, lo - w.offset, hi - lo).copy_(part("exp_avg."));
        avg_sq.narrow(0, lo - w.offset, hi - lo).copy_(part("exp_avg_sq."));
      }
      if (f.contains("master." + w.name)) {
        if (!master.defined()) master = torch::zeros({w.numel}, f32);
        master.narrow(0, lo - w.offset, hi - lo).copy_(part("master."));
      } else {
        all_masters = false;
      }
      covered = hi;
    }
    // Shards with masters cover every trainable element; without them (a file of a run without
    // ZeRO) a parameter appears only once it has stepped.
    if ((with_masters || avg.defined()) && covered < w.offset + w.numel)
      fail(dir, w.name,
           "the optimizer shards do not cover this parameter: elements " + std::to_string(covered) + " to " +
               std::to_string(w.offset + w.numel - 1) + " are in no shard");
    const auto shape = like[i].sizes();
    if (avg.defined()) {
      out["exp_avg." + w.name] = avg.view(shape);
      out["exp_avg_sq." + w.name] = avg_sq.view(shape);
      out["step." + w.name] = step;
    }
    if (all_masters && master.defined()) out["master." + w.name] = master.view(shape);
  }
  return out;
}

}  // namespace qalign::train
