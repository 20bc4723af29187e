#pragma once
// What the demo's model learned, in a form a person can check: the held-out pictures' SRCC per
// distortion type, and the five best- and worst-rated held-out pictures on one contact sheet with
// their predicted levels beside the truth.
#include <string>

namespace qalign::data {

struct DemoReportOptions {
  std::string model;  // the trained model folder (its tokenizer inside)
  std::string data;   // the folder `qalign demo make-data` wrote (manifest.json, images/)
  std::string sheet;  // the contact sheet PNG to write
  int count = 5;      // pictures in each row of the sheet
  int batch_size = 32;
};

// Scores the held-out pictures of the manifest, writes the sheet and returns the table (Markdown):
// one row per distortion type and one for all of them.
std::string demo_report(const DemoReportOptions& options);

}  // namespace qalign::data
