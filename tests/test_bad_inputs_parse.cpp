// Issue 32's inputs whose parsing cost time or memory set by the input rather than by the
// model: JSON headers and label files (a quadratic reader), oversized configs, a pickle that
// builds millions of objects, a damaged `.parts` row, unbounded presets and bench sizes, and a
// million training records. Each runs the real `qalign` command and must end within 20 s under
// 1.5 GB, with a message naming the file or option and the bound, or do the work.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/fixtures.h"

namespace qalign::parse_bounds {
namespace {

namespace fs = std::filesystem;

test::Measured run(const std::string& args, double limit_s = 60) {
  auto m = test::run_qalign_measured(args, limit_s);
  std::cout << "[ measured ] qalign " << args.substr(0, 90) << ": " << m.seconds << " s, " << m.peak_mb
            << " MB peak, rc " << m.exit_code << "\n";
  EXPECT_FALSE(m.timed_out) << args;
  EXPECT_EQ(m.output.find("terminate called"), std::string::npos) << m.output;
  EXPECT_EQ(m.output.find("unexpected error"), std::string::npos) << m.output;
  return m;
}

void expect_bounded(const test::Measured& m) {
  EXPECT_LT(m.seconds, 20);
  EXPECT_LT(m.peak_mb, 1500);
}

// Fails the run with every one of `expected` in its output.
void expect_refused(const test::Measured& m, const std::vector<std::string>& expected) {
  expect_bounded(m);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  for (const auto& e : expected) EXPECT_TRUE(test::output_has(m, e)) << "wanted: " << e << "\n" << m.output;
}

// A file of `size` bytes that holds `head` and then a hole: no disk, any length.
void write_sparse(const std::string& path, const std::string& head, uint64_t size) {
  test::write_file(path, head);
  fs::resize_file(path, size);
}

std::string le64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string copy_tiny_model(const test::ScratchDir& d) {
  const auto dir = d.file("model");
  fs::copy(test::source_dir() + "/" + test::kTinyModel, dir, fs::copy_options::recursive);
  return dir;
}

// `count` records in the authors' training format, all of one fixture picture.
std::string training_records(const test::ScratchDir& d, size_t count) {
  const auto path = d.file("train_" + std::to_string(count) + ".json");
  std::ofstream out(path);
  out << "[";
  for (size_t i = 0; i < count; ++i)
    out << (i ? ",\n" : "\n") << R"({"id": "koniq/)" << i << R"(.jpg->)" << (i % 100) / 20.0 + 1
        << R"(", "image": "img_wide.png", "conversations": [{"from": "human", "value": "How would you rate the )"
        << R"(quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is )"
        << (i % 2 ? "good" : "fair") << R"(."}]})";
  out << "\n]\n";
  return path;
}

}  // namespace

// 50 000 empty tensors (3.4 MB of header): 80 s with the callback parse, which rescanned the
// whole header object at the end of each entry.
TEST(BadInputsParse, SafetensorsHeaderOf50000TensorsInspectsInLinearTime) {
  test::ScratchDir d("qalign-parse");
  std::string header = "{";
  for (int i = 0; i < 50000; ++i)
    header += (i ? "," : "") + std::string(R"("layers.)") + std::to_string(i) +
              R"(.weight":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  header += "}";
  const auto path = d.file("many.safetensors");
  test::write_file(path, le64(header.size()) + header);
  const auto m = run("inspect " + path);
  expect_bounded(m);
  EXPECT_EQ(m.exit_code, 0) << m.output.substr(0, 2000);
  EXPECT_TRUE(test::output_has(m, "layers.49999.weight")) << m.output.substr(0, 2000);
}

// The reference reader's MAX_HEADER_SIZE (100 000 000 bytes), refused before a byte of it is read.
TEST(BadInputsParse, SafetensorsHeaderOver100MBIsRefusedNamingTheFile) {
  test::ScratchDir d("qalign-parse");
  const auto path = d.file("huge_header.safetensors");
  write_sparse(path, le64(100000001), 8 + 100000001);
  expect_refused(run("inspect " + path), {path + ": header: header length 100000001 exceeds the 100 MB"});
}

TEST(BadInputsParse, ConfigJsonOverItsBoundIsRefusedBeforeParsing) {
  test::ScratchDir d("qalign-parse");
  const auto model = copy_tiny_model(d);
  write_sparse(model + "/config.json", "{", 20u << 20);
  expect_refused(run("score --model " + model + " " + test::kTinyImage),
                 {model + "/config.json: 20.0 MiB, above the 16.0 MiB limit for a model's config.json"});
}

TEST(BadInputsParse, TokenizerConfigOverItsBoundIsRefusedBeforeParsing) {
  test::ScratchDir d("qalign-parse");
  const auto model = copy_tiny_model(d);
  write_sparse(model + "/tokenizer_config.json", "{", 17u << 20);
  expect_refused(run("score --model " + model + " " + test::kTinyImage),
                 {model + "/tokenizer_config.json: 17.0 MiB, above the 16.0 MiB limit"});
}

// The issue's 25 MB YAML list: 5.2 GB of yaml-cpp nodes, then std::bad_alloc.
TEST(BadInputsParse, YamlConfigOverItsBoundIsRefusedBeforeParsing) {
  test::ScratchDir d("qalign-parse");
  const auto path = d.file("list.yaml");
  {
    std::ofstream out(path);
    out << "data_path:\n";
    for (int i = 0; i < 2500000; ++i) out << "  - x" << i % 10 << "\n";
  }
  expect_refused(run("train --config " + path + " output_dir=" + d.file("o")),
                 {path + ": ", "MiB, above the 1.0 MiB limit for a YAML training config"});
}

TEST(BadInputsParse, LabelFileOverItsBoundIsRefusedBeforeReading) {
  test::ScratchDir d("qalign-parse");
  const auto path = d.file("labels.json");
  write_sparse(path, "[", (1ull << 30) + (100u << 20));
  expect_refused(run("data make-sft --input " + path + " --out " + d.file("sft.json")),
                 {path + ": 1.1 GiB, above the 1.0 GiB limit for a JSON array of records"});
  EXPECT_FALSE(fs::exists(d.file("sft.json")));
}

// A pickle of 6 MB that appends three million Nones to a list, one at a time: it once built
// every one of them (3.2 GB for the issue's 2x10^7) before finding no dict of tensors.
TEST(BadInputsParse, PickleBuildingMillionsOfObjectsIsRefusedEarly) {
  test::ScratchDir d("qalign-parse");
  std::string pickle = "\x80\x02]";
  for (int i = 0; i < 3000000; ++i) pickle += "Na";
  pickle += ".";
  const auto path = d.file("list.bin");
  {
    std::ofstream out(path, std::ios::binary);
    caffe2::serialize::PyTorchStreamWriter zip([&](const void* data, size_t n) -> size_t {
      out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
      return n;
    });
    zip.writeRecord("data.pkl", pickle.data(), pickle.size());
    zip.writeEndOfFile();
  }
  expect_refused(run("inspect " + path), {path + ": data.pkl: the pickle builds more than 2097152 objects"});
}

// Presets and bench sizes go through bounds, as config.json does, naming the option.
TEST(BadInputsParse, PresetsAndBenchSizesAreBoundedNamingTheOption) {
  expect_refused(run("bench score --preset owl2-7b-1000000l"),
                 {"--preset: \"owl2-7b-1000000l\": the layer count must be 1 to 32"});
  expect_refused(run("bench score --preset owl2-7b-99999999999999999999999l"), {"--preset: ", "must be 1 to 32"});
  expect_refused(run("bench score --preset tiny --batch-sizes 100000000"),
                 {"--batch-sizes: expected 1 to 4096 samples per batch, got 100000000"});
  expect_refused(run("bench score --preset tiny --batch-sizes 2,0"),
                 {"--batch-sizes: expected 1 to 4096 samples per batch, got 0"});
  // A tokenizer with more pieces than the model has rows (the demo model's 512 against LLaMA's 32000).
  for (const char* what : {"score", "train-step"})
    expect_refused(run(std::string("bench ") + what + " --preset configs/demo_model.json"),
                   {"--preset configs/demo_model.json: vocab_size: 512 is smaller than the tokenizer's 32000 pieces"});
  expect_refused(run("bench train-step --preset tiny --batch-size 0"),
                 {"--batch-size: expected 1 to 4096 samples per batch, got 0"});
  expect_refused(run("bench score --preset tiny --repeats 100000000"), {"--repeats: expected 1 to 1000 runs"});
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  expect_refused(run("bench data --threads " + std::to_string(cores + 1)),
                 {"--threads: " + std::to_string(cores + 1) + ": expected 1 to " + std::to_string(cores) + " workers"});
}

// A scored run's rows laid out as a resumable part ("<index>\t<row>", chunks closed by an empty
// line) with `damage` as a chunk of its own after the first `good` rows, then the rest.
class DamagedParts : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(d_.file("in"));
    for (const char* name : {"img_wide.png", "img_tall.jpg", "img_big.png"})
      fs::copy_file(test::source_dir() + "/" + test::kTinyInputs + "/" + name, d_.file(std::string("in/") + name));
    const auto m = run(score_args());
    ASSERT_EQ(m.exit_code, 0) << m.output;
    rows_ = test::read_file(out());
  }

  std::string out() const { return d_.file("scores.jsonl"); }
  std::string score_args() const {
    return "score --model " + test::kTinyModel + " --out " + out() + " " + d_.file("in");
  }

  // Leaves out() mid-job: its parts folder holds the rows with `damage` after the first two.
  std::string interrupt_with(const std::string& damage) {
    const auto folder = out() + ".parts";
    fs::create_directories(folder);
    const auto marker = nlohmann::json::parse(test::read_file(out() + ".job.json"));
    test::write_file(folder + "/job.json", marker.at("job").dump(2) + "\n");
    std::istringstream lines(rows_);
    std::string part, line;
    for (int i = 0; std::getline(lines, line); ++i) {
      if (i == 2) part += "\n" + damage + "\n";
      part += std::to_string(i) + "\t" + line + "\n";
    }
    const auto path = folder + "/rank-0-of-1.rows";
    test::write_file(path, part + "\n");
    fs::remove(out());
    fs::remove(out() + ".job.json");
    return path;
  }

  // The uninterrupted run's rows: the same inputs in order, scores equal up to batching's rounding
  // (an input scored again sits in a batch of another size).
  void expect_rows_of_the_uninterrupted_run() const {
    std::istringstream want(rows_), got(test::read_file(out()));
    std::string a, b;
    while (std::getline(want, a)) {
      ASSERT_TRUE(std::getline(got, b)) << "a row is missing";
      const auto x = nlohmann::json::parse(a), y = nlohmann::json::parse(b);
      EXPECT_EQ(y.at("input"), x.at("input"));
      EXPECT_NEAR(y.at("score").get<double>(), x.at("score").get<double>(), 1e-4) << b;
    }
    EXPECT_FALSE(std::getline(got, b)) << "a row too many: " << b;
  }

  test::ScratchDir d_{"qalign-parts"};
  std::string rows_;
};

// `20000000000\t{}` once cost 2.8 GB (a bit per index up to it) and a merge that asked for a
// rerun which never recovered. Now the damaged line is named, dropped with the rows after it,
// and those inputs are scored again: the result is the uninterrupted run's.
TEST_F(DamagedParts, ADamagedRowIsNamedDroppedAndItsInputsScoredAgain) {
  const auto part = interrupt_with("20000000000\t{}\n");
  const auto m = run(score_args());
  expect_bounded(m);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, part + ": line 4 is damaged (\"input\" is not a string): dropping it")) << m.output;
  expect_rows_of_the_uninterrupted_run();
}

// A well-formed row claiming input 2x10^10: kept as one index among the done ones (not a bit per
// index up to it), and ignored by the merge, which has fewer inputs.
TEST_F(DamagedParts, ARowForAnInputPastTheEndCostsNoMemoryAndIsIgnored) {
  std::string row = rows_.substr(0, rows_.find('\n'));
  interrupt_with("20000000000\t" + row + "\n");
  const auto m = run(score_args());
  expect_bounded(m);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "a row for input 20000000000 is ignored: there are 3 inputs")) << m.output;
  expect_rows_of_the_uninterrupted_run();
}

// A syntactically broken line and an over-long one are damage too.
TEST_F(DamagedParts, ALineThatIsNotARowIsDamage) {
  const auto part = interrupt_with("3\t{\"input\": ");
  const auto m = run(score_args());
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, part + ": line 4 is damaged (not valid JSON")) << m.output;
  expect_rows_of_the_uninterrupted_run();
}

// Issue 32: 10^6 records of the authors' format reach step 1 within 30 s and 1.5 GB; they took
// 205 s and 2.3 GB (a quadratic parse into a tree of the whole file). Measured on 2x10^5 records
// against per-record bounds that hold the million to that: 25 us and 800 bytes a record over a
// run of the same recipe on five records (10^6 here: 10-23 s to step 1 and 1.1 GB peak, on two
// loaded cores; qalign itself starts at ~530 MB).
TEST(BadInputsParse, TrainingRecordsReachStepOneInTimeAndMemoryLinearInTheirCount) {
  test::ScratchDir d("qalign-parse");
  const size_t kRecords = 200000;
  const auto few = training_records(d, 5), many = training_records(d, kRecords);
  const auto train = [&](const std::string& data, const std::string& out) {
    return run("train --config " + test::kTinyRecipe + " data_path=" + data + " output_dir=" + d.file(out) +
                   " max_steps=1 dataloader_num_workers=0",
               120);
  };
  const auto base = train(few, "few");
  ASSERT_EQ(base.exit_code, 0) << base.output;
  const auto m = train(many, "many");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, std::to_string(kRecords) + " samples")) << m.output;
  const double us_per_record = (m.seconds - base.seconds) * 1e6 / kRecords;
  const double bytes_per_record = (m.peak_mb - base.peak_mb) * 1e6 / kRecords;
  std::cout << "[ measured ] " << kRecords << " records: " << us_per_record << " us and " << bytes_per_record
            << " bytes per record\n";
  EXPECT_LT(us_per_record, 25);
  EXPECT_LT(bytes_per_record, 800);
}

// make-sft on 4x10^5 records took 34 s.
TEST(BadInputsParse, MakeSftReadsScoredRecordsInLinearTime) {
  test::ScratchDir d("qalign-parse");
  const auto path = d.file("scored.json");
  {
    std::ofstream out(path);
    out << "[";
    for (int i = 0; i < 200000; ++i)
      out << (i ? "," : "") << R"({"image": "spaq/)" << i << R"(.jpg", "gt_score": )" << (i % 97) + 1.5 << "}";
    out << "]";
  }
  const auto m = run("data make-sft --input " + path + " --out " + d.file("sft.json"));
  expect_bounded(m);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "wrote ")) << m.output;
}

}  // namespace qalign::parse_bounds
