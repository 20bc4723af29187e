// The bad-input table: what a user can get wrong across the whole program — pictures and videos
// that are corrupt, truncated, empty, huge or not pictures at all; missing files; malformed or
// mistyped YAML and JSON; broken checkpoints; a tokenizer without the level words; ratings
// outside the declared range; a disk that fills during a save. Each case runs the real `qalign`
// command and expects its exit code and a message naming the file, the field and what was wrong.
#include <gtest/gtest.h>

#include <sentencepiece_trainer.h>
#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/support/fixtures.h"
#include "train/checkpointing.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

struct Case {
  std::string name;
  // Writes what the case needs into the scratch folder and returns qalign's arguments.
  std::function<std::string(const test::ScratchDir&)> setup;
  int exit_code;
  std::vector<std::string> expected;  // each must appear in the output
};

// The first half of a file: a download cut short.
std::string truncated_copy(const test::ScratchDir& d, const std::string& from, const std::string& name) {
  const auto bytes = test::read_file(from);
  test::write_file(d.file(name), bytes.substr(0, bytes.size() / 2));
  return d.file(name);
}

// A PNG whose header claims 100000 × 100000 pixels (the pixels themselves are never there).
std::string huge_png(const test::ScratchDir& d) {
  auto be32 = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
  std::string ihdr = "IHDR" + be32(100000) + be32(100000) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(0) + be32(0) + "IEND" + be32(0);
  test::write_file(d.file("huge.png"), png);
  return d.file("huge.png");
}

// A copy of the fixture model whose config.json is `config`.
std::string model_with_config(const test::ScratchDir& d, const std::string& config) {
  const auto dir = d.file("model");
  fs::copy(test::source_dir() + "/" + test::kTinyModel, dir, fs::copy_options::recursive);
  test::write_file(dir + "/config.json", config);
  return dir;
}

// A copy of the fixture model whose `file` has its first `from` replaced by `to`.
std::string model_with_edit(const test::ScratchDir& d, const std::string& file, const std::string& from,
                            const std::string& to) {
  const auto dir = d.file("model");
  fs::copy(test::source_dir() + "/" + test::kTinyModel, dir, fs::copy_options::recursive);
  auto text = test::read_file(dir + "/" + file);
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << file << " has no " << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  test::write_file(dir + "/" + file, text);
  return dir;
}

std::string model_with_weights(const test::ScratchDir& d, const std::function<void(std::string&)>& edit) {
  const auto dir = d.file("model");
  fs::copy(test::source_dir() + "/" + test::kTinyModel, dir, fs::copy_options::recursive);
  fs::remove(dir + "/pytorch_model.bin");
  auto bytes = test::read_file(dir + "/model.safetensors");
  edit(bytes);
  test::write_file(dir + "/model.safetensors", bytes);
  return dir;
}

std::string train_args(const std::string& args) { return "train --config " + test::kTinyRecipe + " " + args; }

std::string score(const std::string& input) { return "score --model " + test::kTinyModel + " " + input; }

std::vector<Case> cases() {
  const std::string img = test::kTinyInputs + "/img_wide.png";
  return {
      // Pictures and videos: reported, skipped, and the run's exit code says so.
      {"corrupt JPEG",
       [](const auto& d) {
         test::write_file(d.file("c.jpg"), std::string(3000, '\x5a'));
         return score(d.file("c.jpg"));
       },
       1,
       {"c.jpg: not a decodable image", "1 of 1 inputs could not be scored"}},
      {"truncated JPEG",
       [](const auto& d) {
         return score(truncated_copy(d, test::fixture("qalign-tiny/inputs/img_tall.jpg"), "t.jpg"));
       },
       1,
       {"t.jpg: JPEG data ends before its end-of-image marker: the file is truncated"}},
      {"empty picture",
       [](const auto& d) {
         test::write_file(d.file("e.png"), "");
         return score(d.file("e.png"));
       },
       1,
       {"e.png: image file is empty"}},
      {"text named .png",
       [](const auto& d) {
         test::write_file(d.file("t.png"), "hello\n");
         return score(d.file("t.png"));
       },
       1,
       {"t.png: not a decodable image"}},
      {"huge dimensions",
       [](const auto& d) { return score(huge_png(d)); },
       1,
       {"huge.png: image is 100000x100000 pixels, over the 178956970-pixel limit"}},
      {"missing picture",
       [](const auto& d) { return score(d.file("gone.jpg")); },
       1,
       {"gone.jpg: image file does not exist"}},
      {"corrupt video",
       [](const auto& d) {
         test::write_file(d.file("c.avi"), std::string(4000, '\x11'));
         return score(d.file("c.avi"));
       },
       1,
       {"c.avi: cannot open video"}},
      {"truncated video",
       [](const auto& d) { return score(truncated_copy(d, test::fixture("qalign-tiny/inputs/video.avi"), "t.avi")); },
       1,
       {"t.avi:"}},
      // Training configs (YAML) and their overrides.
      {"YAML syntax error",
       [](const auto& d) {
         test::write_file(d.file("bad.yaml"), "model_name_or_path: [x\n");
         return "train --config " + d.file("bad.yaml");
       },
       1,
       {"bad.yaml:2: YAML syntax error"}},
      {"YAML unknown key",
       [](const auto& d) {
         test::write_file(d.file("k.yaml"), "model_name_or_path: x\nlearning_rat: 1e-3\n");
         return "train --config " + d.file("k.yaml");
       },
       1,
       {"k.yaml:2: learning_rat: unknown key; did you mean 'learning_rate'?"}},
      {"YAML wrong type",
       [](const auto& d) {
         test::write_file(d.file("t.yaml"), "model_name_or_path: x\nlearning_rate: fast\n");
         return "train --config " + d.file("t.yaml");
       },
       1,
       {"t.yaml:2: learning_rate: expected a number, got 'fast'"}},
      {"override wrong type", [](const auto&) { return train_args("max_steps=many"); }, 1, {"max_steps", "many"}},
      {"override bad choice",
       [](const auto&) { return train_args("lr_scheduler_type=cosin"); },
       1,
       {"lr_scheduler_type", "cosine, linear, constant"}},
      {"missing config file", [](const auto& d) { return "train --config " + d.file("none.yaml"); }, 1, {"none.yaml"}},
      // Training data (the authors' conversation JSON).
      {"dataset not JSON",
       [](const auto& d) {
         test::write_file(d.file("bad.json"), "[{\"id\": 1,");
         return train_args("data_path=" + d.file("bad.json") + " output_dir=" + d.file("o"));
       },
       1,
       {"bad.json: not valid JSON", "line 1"}},
      {"record without conversations",
       [](const auto& d) {
         test::write_file(d.file("n.json"), R"([{"id": "a", "image": "img_wide.png"}])");
         return train_args("data_path=" + d.file("n.json") + " output_dir=" + d.file("o"));
       },
       1,
       {"n.json: [0].conversations: missing"}},
      {"conversations not a list",
       [](const auto& d) {
         test::write_file(d.file("s.json"), R"([{"id": "a", "conversations": "hi"}])");
         return train_args("data_path=" + d.file("s.json") + " output_dir=" + d.file("o"));
       },
       1,
       {"s.json: [0].conversations"}},
      {"every picture missing",
       [](const auto& d) {
         test::write_file(
             d.file("m.json"),
             R"([{"id": "a", "image": "nope.png", "conversations": [{"from": "human", "value": "<|image|>Rate."}, {"from": "gpt", "value": "The quality of the image is good."}]}])");
         return train_args("data_path=" + d.file("m.json") + " output_dir=" + d.file("o") + " max_steps=1");
       },
       1,
       {"nope.png", "max_skipped_sample_fraction"}},
      {"missing data file",
       [](const auto& d) { return train_args("data_path=" + d.file("none.json") + " output_dir=" + d.file("o")); },
       1,
       {"none.json"}},
      // Test files for evaluation.
      {"gt_score not a number",
       [img](const auto& d) {
         test::write_file(d.file("g.json"), R"([{"image": "img_wide.png", "gt_score": "high"}])");
         return "eval --model " + test::kTinyModel + " --image-folder " + test::kTinyInputs + " --data " +
                d.file("g.json") + " --out " + d.file("e");
       },
       1,
       {"g.json: [0].gt_score: \"high\" is not a number"}},
      {"test record without a picture",
       [](const auto& d) {
         test::write_file(d.file("p.json"), R"([{"gt_score": 3}])");
         return "eval --model " + test::kTinyModel + " --image-folder " + test::kTinyInputs + " --data " +
                d.file("p.json") + " --out " + d.file("e");
       },
       1,
       {"p.json: [0]"}},
      {"missing test file",
       [](const auto& d) {
         return "eval --model " + test::kTinyModel + " --image-folder " + test::kTinyInputs + " --data " +
                d.file("none.json") + " --out " + d.file("e");
       },
       1,
       {"none.json: cannot open file"}},
      // Model folders.
      {"config.json not JSON",
       [img](const auto& d) { return "score --model " + model_with_config(d, "{\"model_type\": ") + " " + img; },
       1,
       {"model/config.json: invalid JSON"}},
      {"config.json wrong type",
       [img](const auto& d) {
         return "score --model " + model_with_config(d, R"({"model_type": "mplug_owl2", "hidden_size": "64"})") + " " +
                img;
       },
       1,
       {"model/config.json: hidden_size: expected a positive integer, got \"64\" (a string)"}},
      {"config.json another model",
       [img](const auto& d) {
         return "score --model " + model_with_config(d, R"({"model_type": "llama"})") + " " + img;
       },
       1,
       {"model/config.json: model_type: expected \"mplug_owl2\""}},
      {"weights truncated",
       [img](const auto& d) {
         return "score --model " + model_with_weights(d, [](std::string& b) { b.resize(b.size() / 2); }) + " " + img;
       },
       1,
       {"model.safetensors"}},
      {"weights header garbage",
       [img](const auto& d) {
         return "score --model " +
                model_with_weights(d, [](std::string& b) { b.replace(0, 8, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8); }) +
                " " + img;
       },
       1,
       {"model.safetensors"}},
      {"empty tokenizer folder",
       [img](const auto& d) {
         fs::create_directories(d.file("tok"));
         return score("--tokenizer " + d.file("tok") + " " + img);
       },
       1,
       {"tok/tokenizer.model: missing"}},
      {"tokenizer without the level words",
       [img](const auto& d) {
         test::write_file(d.file("corpus.txt"), "the cat sat on the mat\nhello world\nrate this picture\n");
         const auto status = sentencepiece::SentencePieceTrainer::Train(
             "--input=" + d.file("corpus.txt") + " --model_prefix=" + d.file("tokenizer") +
             " --vocab_size=290 --model_type=bpe --byte_fallback=true --minloglevel=2");
         EXPECT_TRUE(status.ok()) << status.ToString();
         fs::create_directories(d.file("tok"));
         fs::rename(d.file("tokenizer.model"), d.file("tok/tokenizer.model"));
         return score("--tokenizer " + d.file("tok") + " " + img);
       },
       1,
       {"excellent"}},
      {"LoRA folder without its config",
       [img](const auto& d) {
         fs::create_directories(d.file("lora"));
         return score("--lora " + d.file("lora") + " " + img);
       },
       1,
       {"lora: adapter_config.json: not a LoRA folder"}},
      {"decoder activation not implemented",
       [img](const auto& d) {
         return "score --model " + model_with_edit(d, "config.json", "\"silu\"", "\"evil\"") + " " + img;
       },
       1,
       {"config.json: hidden_act: only \"silu\" is supported"}},
      {"vision activation not implemented",
       [img](const auto& d) {
         return "score --model " + model_with_edit(d, "config.json", "\"quick_gelu\"", "\"gelu\"") + " " + img;
       },
       1,
       {"hidden_act: only \"quick_gelu\" is supported"}},
      {"preprocessor std zero",
       [img](const auto& d) {
         return "score --model " + model_with_edit(d, "preprocessor_config.json", "0.26862954", "0") + " " + img;
       },
       1,
       {"preprocessor_config.json: image_std: only CLIP's values are supported"}},
      {"preprocessor crop zero",
       [img](const auto& d) {
         return "score --model " +
                model_with_edit(d, "preprocessor_config.json", "\"crop_size\": 56", "\"crop_size\": 0") + " " + img;
       },
       1,
       {"preprocessor_config.json: crop_size: must be the vision tower's image_size 56, got 0"}},
      {"DoRA adapter",
       [img](const auto& d) {
         fs::create_directories(d.file("dora"));
         test::write_file(
             d.file("dora/adapter_config.json"),
             R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "use_dora": true})");
         return score("--lora " + d.file("dora") + " " + img);
       },
       1,
       {"dora/adapter_config.json: use_dora: true is not supported"}},
      {"shard size past 64 bits",
       [](const auto& d) {
         return "export --checkpoint " + test::kTinyModel + " --out " + d.file("x") + " --max-shard-size 18446744074GB";
       },
       1,
       {"--max-shard-size: 18446744074GB: too large"}},
      {"bad shard size",
       [](const auto& d) {
         return "export --checkpoint " + test::kTinyModel + " --out " + d.file("x") + " --max-shard-size 5XB";
       },
       1,
       {"--max-shard-size: 5XB: expected a size such as 5GB"}},
      {"bad device memory",
       [](const auto&) {
         return "plan --config " + test::source_dir() +
                "/configs/onealign.yaml --preset tiny --nproc-per-node 1 --gpu-memory 80GiBs";
       },
       1,
       {"--gpu-memory: 80GiBs: expected a size such as 5GB"}},
      // Ratings outside the declared range are dropped and counted, not an error.
      {"MOS outside the range",
       [](const auto& d) {
         test::write_file(d.file("r.json"),
                          R"([{"image": "a.png", "gt_score": 7.5}, {"image": "b.png", "gt_score": 2.0}])");
         return "data make-sft --input " + d.file("r.json") + " --task quality --media image --out " +
                d.file("sft.json") + " --range 1 5";
       },
       0,
       {"wrote 1 records", "1 dropped out of range"}},
  };
}

int run(const std::string& args, std::string* out) {
  return test::run_command("cd '" + test::source_dir() + "' && '" + test::qalign_binary() + "' " + args, out);
}

}  // namespace

TEST(BadInputs, EachGetsItsExitCodeAndMessage) {
  const auto table = cases();
  EXPECT_GE(table.size(), 30u);
  for (const auto& c : table) {
    SCOPED_TRACE(c.name);
    test::ScratchDir d("qalign-bad");
    std::string out;
    const int rc = run(c.setup(d), &out);
    EXPECT_EQ(rc, c.exit_code) << out;
    for (const auto& want : c.expected)
      EXPECT_NE(out.find(want), std::string::npos) << "missing: " << want << "\noutput:\n" << out;
    EXPECT_EQ(out.find("terminate called"), std::string::npos) << out;
    EXPECT_EQ(out.find("unexpected error"), std::string::npos) << out;
  }
}

// A disk that fills while a checkpoint is written (a file-size limit makes every write past it
// fail with EFBIG): the run stops naming the file, and the checkpoint saved before is intact and
// still the one `latest` names.
TEST(BadInputs, DiskFullDuringSaveKeepsThePreviousCheckpoint) {
  test::ScratchDir d("qalign-full");
  const auto out_dir = d.file("run");
  std::string out;
  ASSERT_EQ(run(train_args("output_dir=" + out_dir + " max_steps=1 save_steps=1"), &out), 0) << out;
  const auto before = test::read_file(out_dir + "/checkpoint-1/model.safetensors");
  const int rc = test::run_command(
      "cd '" + test::source_dir() + "' && bash -c \"trap '' XFSZ; ulimit -f 300; exec '" + test::qalign_binary() +
          "' " + train_args("output_dir=" + out_dir + " max_steps=2 save_steps=1 resume_from_checkpoint=latest") + "\"",
      &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("checkpoint-2"), std::string::npos) << out;
  EXPECT_NE(out.find("File too large"), std::string::npos) << out;
  EXPECT_EQ(test::read_file(out_dir + "/latest"), "checkpoint-1\n");
  EXPECT_FALSE(train::checkpoint_problem(out_dir + "/checkpoint-1").has_value());
  EXPECT_EQ(test::read_file(out_dir + "/checkpoint-1/model.safetensors"), before);
  EXPECT_FALSE(fs::exists(out_dir + "/checkpoint-2"));
}
