// --quantize int8 | int4: the language model's linears with quantised weights score the golden
// fixtures within a stated tolerance of float32, deterministically, the same in a batch as alone;
// bad combinations fail naming the option (and the layer).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/preprocess.h"
#include "qalign/io/load_target.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/weights.h"
#include "qalign/model/quantize.h"
#include "qalign/model/quantized_weight.h"
#include "qalign/scorer.h"
#include "tests/support/fixtures.h"

using namespace qalign;

namespace {

// Largest differences from float32 allowed for a level probability and for the 1-5 score. The
// fixture is a random tiny model (inputs 64 and 128 wide, weights N(0, 0.02)), where each
// layer's rounding error is a far larger share of its output than in a trained model at full size.
// Measured on this CPU (the kernels take bfloat16 activations): at most int8 0.006, int4 in
// groups of 32 0.06 / 0.12, of 64 0.05 / 0.08; int8dyn (int8 activations, one scale per call)
// 0.007 / 0.017.
// The bounds are twice that, for other CPUs' kernels (sums in another order).
struct Mode {
  std::string flags;
  model::QuantizeOptions options;
  double prob_tolerance, score_tolerance;
};
const std::vector<Mode>& modes() {
  static const std::vector<Mode> m = {{"--quantize int8", {"int8", 128}, 6e-3, 1.2e-2},
                                      {"--quantize int8dyn", {"int8dyn", 128}, 1.4e-2, 3.4e-2},
                                      {"--quantize int4 --group-size 32", {"int4", 32}, 0.12, 0.25},
                                      {"--quantize int4 --group-size 64", {"int4", 64}, 0.12, 0.25}};
  return m;
}

std::string tiny_model() { return test::fixture("qalign-tiny/model"); }

nlohmann::json golden_case(const std::string& c) {
  return nlohmann::json::parse(std::ifstream(test::fixture("qalign-tiny/golden.json")))["cases"][c];
}

std::map<std::string, nlohmann::json> score_rows(const std::string& args) {
  std::string out;
  const int rc = test::run_command(test::qalign_binary() + " score --json " + args, &out);
  EXPECT_EQ(rc, 0) << out;
  std::map<std::string, nlohmann::json> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') {
      const auto j = nlohmann::json::parse(line);
      rows[j["input"].get<std::string>()] = j;
    }
  return rows;
}

Scorer quantized_scorer(const model::QuantizeOptions& o, torch::Dtype dtype = torch::kFloat32) {
  auto m = io::load_pretrained(tiny_model(), dtype);
  model::quantize_linears(m, o);
  return Scorer(m, Tokenizer(tiny_model()));
}

// Eight different pictures from the fixture's three.
std::vector<torch::Tensor> eight_pictures(int64_t size) {
  std::vector<torch::Tensor> out;
  for (const char* name : {"img_wide.png", "img_tall.jpg", "img_big.png"}) {
    const auto p = data::load_image_tensor(test::fixture(std::string("qalign-tiny/inputs/") + name), size);
    out.push_back(p.unsqueeze(0));
    out.push_back(p.flip(-1).unsqueeze(0));
    if (out.size() < 8) out.push_back(p.flip(-2).unsqueeze(0));
  }
  return out;
}

torch::Tensor probs_of(Scorer scorer) {
  const auto pictures = eight_pictures(scorer.image_size());
  return scorer.score(pictures, Task::kQuality, Media::kImage).probs;
}

std::string failure_of(const std::string& args) {
  std::string out;
  EXPECT_NE(test::run_command(test::qalign_binary() + " " + args, &out), 0) << out;
  return out;
}

}  // namespace

TEST(QuantizeCli, EveryModeScoresTheGoldenFixturesWithinItsTolerance) {
  const auto in = test::fixture("qalign-tiny/inputs/");
  const std::vector<std::pair<std::string, std::string>> items = {{"img_wide.png", "image.img_wide"},
                                                                  {"img_tall.jpg", "image.img_tall"},
                                                                  {"img_big.png", "image.img_big"},
                                                                  {"video.avi", "video"}};
  std::string paths;
  for (const auto& [file, c] : items) paths += " " + in + file;
  for (const auto& mode : modes()) {
    const auto rows = score_rows(mode.flags + " --model " + tiny_model() + paths);
    ASSERT_EQ(rows.size(), items.size()) << mode.flags;
    double largest = 0;
    for (const auto& [file, c] : items) {
      const auto& row = rows.at(in + file);
      const auto g = golden_case(c);
      for (size_t k = 0; k < kLevelWords.size(); ++k) {
        const double d = std::abs(row["probs"][kLevelWords[k]].get<double>() - g["level_probs"][0][k].get<double>());
        EXPECT_LE(d, mode.prob_tolerance) << mode.flags << " " << file << " " << kLevelWords[k];
        largest = std::max(largest, d);
      }
      const double d = std::abs(row["score"].get<double>() - g["score_model"][0].get<double>());
      EXPECT_LE(d, mode.score_tolerance) << mode.flags << " " << file << " score";
      largest = std::max(largest, d);
    }
    std::cout << mode.flags << ": largest difference from float32 " << largest << "\n";
    EXPECT_GT(largest, 1e-7) << mode.flags << " scored exactly as float32: the weights were not quantised";
  }
}

TEST(Quantize, AModelLoadedTwiceScoresBitwiseTheSame) {
  for (const auto& mode : modes())
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      auto first = quantized_scorer(mode.options, dtype), second = quantized_scorer(mode.options, dtype);
      const auto pictures = eight_pictures(first.image_size());
      const auto a = first.score(pictures, Task::kQuality, Media::kImage);
      const auto b = second.score(pictures, Task::kQuality, Media::kImage);
      EXPECT_TRUE(torch::equal(a.probs, b.probs)) << mode.flags << " " << dtype;
    }
}

// Quantising each weight as it is read (io::LoadTarget) gives the model that quantising after a
// plain load gives, bitwise: plain folders and LoRA folders merged at load.
TEST(Quantize, QuantisingWhileLoadingEqualsQuantisingAfterTheLoad) {
  const auto lora = test::fixture("qalign-lora/q-align-tiny-lora");
  for (const auto& mode : modes())
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      const auto while_loading = probs_of(
          Scorer(io::load_pretrained(tiny_model(), dtype, torch::kCPU, mode.options), Tokenizer(tiny_model())));
      EXPECT_TRUE(torch::equal(while_loading, probs_of(quantized_scorer(mode.options, dtype))))
          << mode.flags << " " << dtype;
      auto merged = io::load_pretrained_with_lora(tiny_model(), lora, dtype);
      model::quantize_linears(merged, mode.options);
      const auto lora_while_loading =
          probs_of(Scorer(io::load_pretrained_with_lora(tiny_model(), lora, dtype, torch::kCPU, mode.options),
                          Tokenizer(tiny_model())));
      EXPECT_TRUE(torch::equal(lora_while_loading, probs_of(Scorer(merged, Tokenizer(tiny_model())))))
          << "--lora " << mode.flags << " " << dtype;
      EXPECT_FALSE(torch::equal(lora_while_loading, while_loading)) << "the LoRA folder changed nothing";
    }
}

// The shards are read in pieces (16 MiB at full size): a weight is quantised once all its pieces
// are in, whatever their size, and one left incomplete is an error naming it.
TEST(Quantize, LoadTargetQuantisesEachWeightOnceAllItsPiecesAreIn) {
  const auto weights = io::state_dict(*io::load_pretrained(tiny_model()));
  const model::QuantizeOptions int8{"int8", 128};
  auto load_in_pieces = [&](const std::string& skip_last_piece_of) {
    io::LoadTarget target(io::checked_config(tiny_model()), torch::TensorOptions(), int8);
    for (const auto& [name, t] : weights) {
      const auto flat = t.reshape({-1});
      const int64_t piece = 100, n = flat.numel();
      for (int64_t at = 0; at < n; at += piece)
        if (!(name == skip_last_piece_of && at + piece >= n))
          target.put(name, flat.narrow(0, at, std::min(piece, n - at)), at);
    }
    return target.finish("pieces");
  };
  EXPECT_TRUE(
      torch::equal(probs_of(Scorer(load_in_pieces(""), Tokenizer(tiny_model()))), probs_of(quantized_scorer(int8))));
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  try {
    load_in_pieces(q);
    ADD_FAILURE() << "an incomplete weight was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(q), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pieces"), std::string::npos) << e.what();
  }
}

namespace {

// The file whose mapping holds `t`'s bytes (/proc/self/maps): a path, "[heap]", or "" for
// anonymous memory.
std::string mapped_file_of(const torch::Tensor& t) {
  const auto at = reinterpret_cast<uintptr_t>(t.data_ptr());
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    const auto dash = range.find('-');
    const auto begin = std::stoull(range.substr(0, dash), nullptr, 16),
               end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (at >= begin && at < end) return path;
  }
  return "";
}

}  // namespace

// A quantising load on the CPU reads the embedding table and lm_head from the mapped checkpoint
// (scoring touches a few rows of each) where the checkpoint's dtype is the model's, and copies
// them otherwise; a plain load copies every tensor.
TEST(Quantize, EmbeddingAndLmHeadStayInTheMappedCheckpoint) {
  const model::QuantizeOptions int8{"int8", 128};
  const auto file = std::filesystem::canonical(tiny_model() + "/model.safetensors").string();
  const auto same = io::load_pretrained(tiny_model(), torch::kFloat32, torch::kCPU, int8);
  EXPECT_EQ(mapped_file_of(same->model->embed_tokens->weight), file);
  EXPECT_EQ(mapped_file_of(same->lm_head->weight), file);
  EXPECT_NE(mapped_file_of(same->model->norm->weight), file);
  const auto cast = io::load_pretrained(tiny_model(), torch::kBFloat16, torch::kCPU, int8);
  const auto plain = io::load_pretrained(tiny_model());
  for (const auto& m : {cast, plain}) {
    EXPECT_NE(mapped_file_of(m->model->embed_tokens->weight), file);
    EXPECT_NE(mapped_file_of(m->lm_head->weight), file);
  }
  EXPECT_TRUE(torch::equal(same->model->embed_tokens->weight, plain->model->embed_tokens->weight));
  EXPECT_TRUE(torch::equal(same->lm_head->weight, plain->lm_head->weight));
}

TEST(Quantize, BatchOfEightEqualsEightSingleImages) {
  for (const auto& mode : modes()) {
    auto scorer = quantized_scorer(mode.options);
    const auto pictures = eight_pictures(scorer.image_size());
    const auto batch = scorer.score(pictures, Task::kQuality, Media::kImage);
    for (size_t i = 0; i < pictures.size(); ++i) {
      const auto alone = scorer.score({pictures[i]}, Task::kQuality, Media::kImage);
      EXPECT_LE((batch.probs[i] - alone.probs[0]).abs().max().item<double>(), mode.prob_tolerance)
          << mode.flags << " " << i;
    }
  }
}

TEST(Quantize, OnlyTheLanguageModelsLinearsLoseTheirFloatWeights) {
  const model::QuantizeOptions int8{"int8", 128};
  auto after = io::load_pretrained(tiny_model());
  model::quantize_linears(after, int8);
  for (auto m : {after, io::load_pretrained(tiny_model(), torch::kFloat32, torch::kCPU, int8)}) {
    const auto params = m->named_parameters();
    for (const char* gone :
         {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.multiway.1.weight",
          "model.layers.0.self_attn.v_proj.multiway.0.weight", "model.layers.1.self_attn.o_proj.weight",
          "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
          "model.layers.1.mlp.down_proj.weight"})
      EXPECT_EQ(params.find(gone), nullptr) << gone;
    for (const char* kept : {"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight",
                             "model.layers.0.input_layernorm.multiway.1.weight"})
      EXPECT_NE(params.find(kept), nullptr) << kept;
    // Linears outside the language model keep float weights with storage of their own.
    for (const auto& p : params) EXPECT_FALSE(p.value().is_meta()) << p.key();
    EXPECT_TRUE(m->model->layers[0]->as<model::LlamaDecoderLayerImpl>()->self_attn->q_proj->quantized);
  }
}

// --quantize-vision: the vision tower's and the abstractor's linears lose their floats too; the
// patch embedding, norms, embeddings and lm_head keep theirs; the same model loading or after.
// The fixtures' abstractor MLP is 88 wide, which the int8 kernel cannot read (refused, below): a
// random model of the tiny fixture's shapes with a 96-wide abstractor MLP.
// A random model of the tiny fixture's shapes whose abstractor MLP is 96 wide (the fixture's 88
// takes no int8 or int4 kernel), written to `dir`/model.
std::string vision_quantisable_model(const test::ScratchDir& dir) {
  auto config = nlohmann::json::parse(std::ifstream(tiny_model() + "/config.json"));
  config["visual_config"]["visual_abstractor"]["intermediate_size"] = 96;
  std::ofstream(dir.file("config.json")) << config.dump();
  std::string out;
  EXPECT_EQ(test::run_command(test::qalign_binary() + " init --config " + dir.file("config.json") + " --tokenizer " +
                                  tiny_model() + " --out " + dir.file("model"),
                              &out),
            0)
      << out;
  return dir.file("model");
}

TEST(Quantize, QuantizeVisionAlsoTakesTheVisionTowersAndAbstractorsLinears) {
  test::ScratchDir dir("qalign_quantize_vision");
  const auto model_dir = vision_quantisable_model(dir);
  const model::QuantizeOptions int8{"int8", 128, true};
  auto floats = io::load_pretrained(model_dir);
  auto after = io::load_pretrained(model_dir);
  model::quantize_linears(after, int8);
  auto loading = io::load_pretrained(model_dir, torch::kFloat32, torch::kCPU, int8);
  for (auto m : {after, loading}) {
    const auto params = m->named_parameters();
    for (const char* gone : {"model.layers.0.self_attn.q_proj.weight",
                             "model.vision_model.encoder.layers.0.self_attn.query_key_value.weight",
                             "model.vision_model.encoder.layers.0.mlp.fc2.weight",
                             "model.visual_abstractor.encoder.layers.0.crossattention.attention.key.weight",
                             "model.visual_abstractor.encoder.layers.0.crossattention.output.mlp.w2.weight",
                             "model.visual_abstractor.visual_fc.weight"})
      EXPECT_EQ(params.find(gone), nullptr) << gone;
    for (const char* kept :
         {"lm_head.weight", "model.embed_tokens.weight", "model.vision_model.embeddings.patch_embed.weight",
          "model.vision_model.encoder.layers.0.mlp.fc2.bias",
          "model.visual_abstractor.encoder.layers.0.crossattention.normk.weight"})
      EXPECT_NE(params.find(kept), nullptr) << kept;
    for (const auto& p : params) EXPECT_FALSE(p.value().is_meta()) << p.key();
  }
  torch::manual_seed(5);
  const auto pixels = torch::rand({2, 3, 56, 56});
  torch::NoGradGuard no_grad;
  const auto reference = floats->model->encode_images(pixels), quantised = after->model->encode_images(pixels);
  EXPECT_TRUE(torch::equal(quantised, loading->model->encode_images(pixels)));
  // Rounded weights, the same features to within int8's and bfloat16's rounding: not equal, close.
  EXPECT_FALSE(torch::equal(quantised, reference));
  EXPECT_LE((quantised - reference).abs().max().item<double>(), 0.05 * reference.abs().max().item<double>());

  // The fixture's 88-wide abstractor MLP: refused, naming the option and the layer.
  try {
    io::load_pretrained(tiny_model(), torch::kFloat32, torch::kCPU, int8);
    ADD_FAILURE() << "loaded";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--quantize"), std::string::npos) << what;
    EXPECT_NE(what.find("model.visual_abstractor.encoder.layers.0.crossattention.output.mlp.w2"), std::string::npos)
        << what;
  }
}

// `qalign score --quantize-vision`: scores other than the language model's int8 alone (the vision
// features are rounded too), close to float32's; the fixture's 88-wide abstractor is refused.
TEST(QuantizeCli, QuantizeVisionScoresCloseToFloatAndApartFromLanguageOnly) {
  test::ScratchDir dir("qalign_quantize_vision_cli");
  const auto model_dir = vision_quantisable_model(dir);
  const auto in = test::fixture("qalign-tiny/inputs/");
  const std::string paths = " " + in + "img_wide.png " + in + "img_tall.jpg";
  const auto floats = score_rows("--dtype float32 --model " + model_dir + paths);
  const auto language = score_rows("--dtype float32 --quantize int8 --model " + model_dir + paths);
  const auto vision = score_rows("--dtype float32 --quantize int8 --quantize-vision --model " + model_dir + paths);
  ASSERT_EQ(vision.size(), 2u);
  for (const auto& [path, row] : vision) {
    const double v = row["score"].get<double>();
    EXPECT_NE(v, language.at(path)["score"].get<double>()) << path;
    EXPECT_NEAR(v, floats.at(path)["score"].get<double>(), 0.05) << path;
  }
  const auto out = failure_of("score --model " + tiny_model() + paths + " --quantize int8 --quantize-vision");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  EXPECT_NE(out.find("mlp.w2"), std::string::npos) << out;
}

TEST(Quantize, Int8ProductIsTheRoundedWeightsProduct) {
  torch::manual_seed(3);
  const auto w = torch::randn({32, 64}), x = torch::randn({2, 5, 64});
  const auto scale = w.abs().amax(1, true) / 127;
  const auto expected = torch::matmul(x, ((w / scale).round() * scale).t());
  const auto y = model::quantize_int8(w)->matmul(x);
  EXPECT_EQ(y.sizes(), expected.sizes());
  // The kernel runs in bfloat16 (8 significant bits): within 1 % of the largest output.
  EXPECT_LE((y - expected).abs().max().item<double>(), 1e-2 * expected.abs().max().item<double>());
}

// The packed int4 kernel computes with the codes and the per-group scales and zeros we chose.
TEST(Quantize, Int4ProductIsTheGroupedCodesProduct) {
  torch::manual_seed(4);
  const int64_t group = 32;
  const auto w = torch::randn({48, 128}), x = torch::randn({3, 128});
  const auto g = w.reshape({-1, group});
  // Scales and zeros are kept in bfloat16; the codes are found against those rounded values.
  auto bf16 = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat32); };
  const auto lo = g.amin(1, true), scale = bf16((g.amax(1, true) - lo) / 15), zero = bf16(lo + scale * 8);
  const auto codes = ((g - (zero - scale * 8)) / scale).round().clamp(0, 15);
  const auto dequantised = ((codes - 8) * scale + zero).reshape({48, 128});
  const auto y = model::quantize_int4(w, group)->matmul(x);
  const auto expected = torch::matmul(x, dequantised.t());
  EXPECT_LE((y - expected).abs().max().item<double>(), 1e-2 * expected.abs().max().item<double>());
}

TEST(QuantizeCli, BadCombinationsNameTheOption) {
  const auto img = test::fixture("qalign-tiny/inputs/img_wide.png");
  const auto score = "score --model " + tiny_model() + " " + img + " ";
  auto out = failure_of(score + "--quantize int3");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  EXPECT_NE(out.find("int3"), std::string::npos) << out;
  out = failure_of(score + "--quantize fp8");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  EXPECT_NE(out.find("needs a Hopper GPU"), std::string::npos) << out;
  out = failure_of(score + "--quantize int4 --group-size 48");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
  EXPECT_NE(out.find("48"), std::string::npos) << out;
  // The tiny model's inputs are 64 and 128 wide: the default group of 128 does not divide 64.
  out = failure_of(score + "--quantize int4");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
  EXPECT_NE(out.find("model.layers.0.self_attn.q_proj"), std::string::npos) << out;
  out = failure_of("eval --model " + tiny_model() + " --data " + test::fixture("qalign-tiny/inputs/train.json") +
                   " --quantize fp8");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  out = failure_of("bench score --preset tiny --quantize int4 --group-size 100");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
}

TEST(QuantizeCli, BenchScoreRunsQuantised) {
  std::string out;
  ASSERT_EQ(test::run_command("cd '" + test::source_dir() + "' && " + test::qalign_binary() +
                                  " bench score --preset tiny --quantize int4 --group-size 32 --batch-sizes 1,2 "
                                  "--warmup 0 --repeats 1 --json",
                              &out),
            0)
      << out;
  const auto j = nlohmann::json::parse(out.substr(out.rfind("{\"bench\"")));
  EXPECT_EQ(j["quantize"], "int4");
  EXPECT_EQ(j["group_size"], 32);
  EXPECT_EQ(j["batches"].size(), 2u);
}

// eval quantises the same way and records the mode, so a folder of int8 predictions is never
// resumed by a float32 run.
TEST(QuantizeCli, EvalRecordsTheModeAndKeepsItsPredictionsApart) {
  const test::ScratchDir scratch("qalign-quantize-eval");
  const auto data = scratch.path() + "/set.json", out = scratch.path() + "/out";
  test::write_file(data, R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 1.25},
    {"image": "img_big.png", "gt_score": 4.0}])");
  const auto eval = test::qalign_binary() + " eval --model " + tiny_model() + " --data " + data + " --image-folder " +
                    test::fixture("qalign-tiny/inputs") + " --out " + out;
  std::string log;
  ASSERT_EQ(test::run_command(eval + " --quantize int8", &log), 0) << log;
  const auto job = nlohmann::json::parse(test::read_file(out + "/job.json"));
  EXPECT_EQ(job["quantize"]["mode"], "int8") << job.dump();
  EXPECT_EQ(test::read_jsonl(out + "/predictions.jsonl").size(), 3u);
  EXPECT_NE(test::run_command(eval, &log), 0) << log;
  EXPECT_NE(log.find("describes differently"), std::string::npos) << log;
}

namespace {

// The bytes a loaded model holds: its tensors and its quantised weights.
int64_t held_bytes(model::Owl2ForCausalLM& m) {
  int64_t bytes = 0;
  for (const auto& p : m->parameters()) bytes += static_cast<int64_t>(p.nbytes());
  for (const auto& b : m->buffers()) bytes += static_cast<int64_t>(b.nbytes());
  for (const auto& item : m->named_modules())
    if (auto* lin = item.value()->as<model::LinearImpl>(); lin && lin->quantized) bytes += lin->quantized->bytes();
  return bytes;
}

// "--dtype bfloat16 --quantize int4 --group-size 64" -> the model those options load.
model::Owl2ForCausalLM load_with_flags(const std::string& flags) {
  std::map<std::string, std::string> o;
  model::QuantizeOptions q;
  std::istringstream in(flags);
  for (std::string key, value; in >> key;)  // --device cuda (fp8) is left out
    if (key == "--quantize-vision")
      q.vision = true;
    else if (in >> value)
      o[key] = value;
  if (o.count("--quantize")) q.mode = o["--quantize"];
  if (o.count("--group-size")) q.group_size = std::stoll(o["--group-size"]);
  return io::load_pretrained(tiny_model(), o.at("--dtype") == "bfloat16" ? torch::kBFloat16 : torch::kFloat32,
                             torch::kCPU, q);
}

}  // namespace

// inspect and plan give the weights' memory per mode; each figure is what the model loaded with
// that mode's options holds.
TEST(QuantizeCli, InspectAndPlanShowTheWeightsMemoryOfEachMode) {
  std::string out;
  ASSERT_EQ(test::run_command(test::qalign_binary() + " inspect --json " + tiny_model(), &out), 0) << out;
  const auto modes = nlohmann::json::parse(out)["weights_per_mode"];
  std::vector<std::string> names;
  for (const auto& m : modes) {
    names.push_back(m["mode"].get<std::string>());
    auto loaded = load_with_flags(m["flags"].get<std::string>());
    EXPECT_EQ(m["bytes"].get<int64_t>(), held_bytes(loaded)) << m.dump();
    // What a quantising CPU load reads from the mapped checkpoint: embed_tokens and lm_head.
    const bool cpu_quantised =
        m["flags"].get<std::string>().find("--quantize") != std::string::npos && m["mode"].get<std::string>() != "fp8";
    EXPECT_EQ(m["mapped_bytes"].get<int64_t>(),
              cpu_quantised ? static_cast<int64_t>(loaded->model->embed_tokens->weight.nbytes() +
                                                   loaded->lm_head->weight.nbytes())
                            : int64_t{0})
        << m.dump();
  }
  // The tiny model's 64-wide inputs rule out groups of 128.
  // Its abstractor's 88-wide MLP takes neither int8 nor int4: no "+ vision" rows.
  EXPECT_EQ(names, (std::vector<std::string>{"float32", "bfloat16", "int8", "int8dyn", "int4 (group 64)", "fp8"}));
  EXPECT_LT(modes[4]["bytes"].get<int64_t>(), modes[2]["bytes"].get<int64_t>());
  EXPECT_LT(modes[2]["bytes"].get<int64_t>(), modes[1]["bytes"].get<int64_t>());

  ASSERT_EQ(test::run_command(test::qalign_binary() + " inspect " + tiny_model(), &out), 0) << out;
  EXPECT_NE(out.find("--dtype bfloat16 --quantize int8"), std::string::npos) << out;
  const std::string plan = "cd '" + test::source_dir() + "' && " + test::qalign_binary() +
                           " plan --config tests/fixtures/train/tiny_recipe.yaml --nproc-per-node 1";
  ASSERT_EQ(test::run_command(plan + " --json", &out), 0) << out;
  const auto json_line = out.substr(out.find('{'), out.find('\n', out.find('{')) - out.find('{'));  // stderr follows
  EXPECT_EQ(nlohmann::json::parse(json_line)["weights_per_mode"], modes);
  ASSERT_EQ(test::run_command(plan, &out), 0) << out;
  EXPECT_NE(out.find("--quantize int4 --group-size 64"), std::string::npos) << out;
}
