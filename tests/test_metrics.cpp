// SRCC, PLCC, KRCC and the logistic fit against numbers computed by hand and by scipy.
//
// The scipy figures were produced once with scipy 1.17.1 / numpy in a throw-away virtualenv:
//   stats.spearmanr(x, y)[0], stats.pearsonr(x, y)[0], stats.kendalltau(x, y)[0] and
//   curve_fit(f, x, y, p0=[y.max(), y.min(), x.mean(), x.std() / 4], ftol=xtol=gtol=1e-15)
// with f(x, b1, b2, b3, b4) = (b1 - b2) / (1 + exp(-(x - b3) / abs(b4))) + b2, then pearsonr and
// the RMSE of f(x) against y; printed with %.17g.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "qalign/metrics.h"

namespace {

using namespace qalign::metrics;

const std::vector<double> kTiesX = {1, 2, 2, 3, 4, 4, 4, 5};
const std::vector<double> kTiesY = {2, 1, 3, 3, 5, 4, 6, 6};

// i = 0..59: x = 2 sin(1.3 i) + 0.05 i, y = 3 + 2 / (1 + exp(-(x - 0.5) / 0.7)) + 0.3 cos(7.1 i).
void curve60(std::vector<double>& x, std::vector<double>& y) {
  for (int i = 0; i < 60; ++i) {
    x.push_back(std::sin(i * 1.3) * 2 + i * 0.05);
    y.push_back(3 + 2 / (1 + std::exp(-(x.back() - 0.5) / 0.7)) + 0.3 * std::cos(i * 7.1));
  }
}

}  // namespace

TEST(Metrics, AverageRanksShareTiedPositionsAsScipyRankdata) {
  // scipy.stats.rankdata([3,1,4,1,5,9,2,6,5,3,5])
  const std::vector<double> expected = {4.5, 1.5, 6, 1.5, 8, 11, 3, 10, 8, 4.5, 8};
  EXPECT_EQ(average_ranks({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}), expected);
}

TEST(Metrics, HandComputedCases) {
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3, 4, 5}, {2, 4, 6, 8, 10}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4, 5}, {50, 40, 30, 20, 10}), -1.0);
  EXPECT_DOUBLE_EQ(kendall_tau_b({1, 2, 3, 4, 5}, {1, 4, 9, 16, 25}), 1.0);
  // No ties: rho = 1 - 6 Σd² / (n (n² - 1)) = 1 - 6·2 / 60.
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {1, 3, 2, 4}), 0.8, 1e-15);
  // Pairs: 4 concordant, 0 discordant, 1 tied in x only, 1 tied in y only: 4 / sqrt(5 · 5).
  EXPECT_NEAR(kendall_tau_b({1, 2, 2, 3}, {1, 3, 2, 3}), 0.8, 1e-15);
  // x = (-1, 0, 1) centred, y = (1, 0, 2) − 1: Σxy = 1, Σx² = 2, Σy² = 2.
  EXPECT_NEAR(pearson({1, 2, 3}, {1, 0, 2}), 0.5, 1e-15);
}

TEST(Metrics, TiesMatchScipy) {
  EXPECT_NEAR(spearman(kTiesX, kTiesY), 0.90077751054014765, 1e-14);
  EXPECT_NEAR(pearson(kTiesX, kTiesY), 0.87672278537057335, 1e-14);
  EXPECT_NEAR(kendall_tau_b(kTiesX, kTiesY), 0.80064076902543579, 1e-14);
}

TEST(Metrics, LogisticFitMatchesScipyCurveFit) {
  const auto a = agreement(kTiesX, kTiesY);
  EXPECT_EQ(a.n, 8u);
  EXPECT_NEAR(a.plcc_logistic, 0.91052760057400706, 1e-7);
  EXPECT_NEAR(a.rmse_logistic, 0.70861466802611772, 1e-7);

  std::vector<double> x, y;
  curve60(x, y);
  const auto b = agreement(x, y);
  EXPECT_NEAR(b.srcc, 0.9026396221172549, 1e-13);
  EXPECT_NEAR(b.plcc, 0.89641851890968549, 1e-13);
  EXPECT_NEAR(b.krcc, 0.74011299435028244, 1e-13);
  EXPECT_NEAR(b.plcc_logistic, 0.94862552457409521, 1e-8);
  EXPECT_NEAR(b.rmse_logistic, 0.21273149400812399, 1e-8);
  const auto f = fit_logistic4(x, y);
  const std::vector<double> beta = {5.014914145460517, 2.902574563190491, 0.4242592157083117, 0.7692216569822891};
  for (int p = 0; p < 4; ++p) EXPECT_NEAR(f.beta[p], beta[p], 1e-6) << "beta" << p + 1;
}

TEST(Metrics, LogisticFitRecoversAnExactCurve) {
  // A decreasing curve on a MOS-like scale (as for DMOS sets), sampled without noise.
  const Logistic4 truth{{20.0, 80.0, 3.2, 0.4}};
  std::vector<double> x;
  for (int i = 0; i < 40; ++i) x.push_back(1 + 4.0 * i / 39);
  const auto y = truth(x);
  const auto f = fit_logistic4(x, y);
  for (int p = 0; p < 4; ++p) EXPECT_NEAR(f.beta[p], truth.beta[p], 1e-6) << "beta" << p + 1;
  const auto a = agreement(x, y);
  EXPECT_NEAR(a.plcc_logistic, 1.0, 1e-12);
  EXPECT_NEAR(a.rmse_logistic, 0.0, 1e-6);
  EXPECT_NEAR(a.srcc, -1.0, 1e-15);
}

TEST(Metrics, UndefinedStatisticsAreNaN) {
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman({1, 2, 3}, {4, 4, 4})));
  EXPECT_TRUE(std::isnan(kendall_tau_b({1, 1}, {1, 2})));
  EXPECT_TRUE(std::isnan(pearson({1}, {1})));
  const auto a = agreement({2, 2, 2}, {1, 2, 3});
  EXPECT_TRUE(std::isnan(a.plcc_logistic));
  EXPECT_NEAR(a.rmse_logistic, std::sqrt(2.0 / 3), 1e-12);  // the fit degenerates to the mean of y
  EXPECT_THROW(pearson({1, 2}, {1, 2, 3}), std::invalid_argument);
}

// A report must say why a correlation is missing rather than print NaN as a number.
TEST(Metrics, AgreementSaysWhyCorrelationsAreUndefined) {
  const auto flat = agreement({2, 2, 2}, {1, 2, 3});
  EXPECT_TRUE(std::isnan(flat.srcc) && std::isnan(flat.plcc) && std::isnan(flat.krcc));
  EXPECT_EQ(flat.undefined, "every prediction is 2");
  EXPECT_EQ(agreement({1, 2, 3}, {4.5, 4.5, 4.5}).undefined, "every ground-truth score is 4.5");
  EXPECT_EQ(agreement({1, 2, 3}, {1, 3, 2}).undefined, "");
  const auto none = undefined_agreement(1, "why");
  EXPECT_EQ(none.n, 1u);
  EXPECT_TRUE(std::isnan(none.srcc) && std::isnan(none.rmse_logistic));
  EXPECT_EQ(none.undefined, "why");
}

// Metrics of fewer than two items are undefined, and over NaN they would depend only on where
// the NaNs sort: refused, not returned.
TEST(Metrics, AgreementRefusesTooFewItemsAndNonFiniteValues) {
  EXPECT_THROW(agreement({}, {}), std::invalid_argument);
  EXPECT_THROW(agreement({3.0}, {2.0}), std::invalid_argument);
  const double nan = std::nan("");
  EXPECT_THROW(agreement({1, nan, 3}, {1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(agreement({nan, nan, nan}, {3, 2, 1}), std::invalid_argument);
  EXPECT_THROW(agreement({1, 2, 3}, {1, INFINITY, 3}), std::invalid_argument);
  try {
    agreement({1, nan}, {1, 2});
    ADD_FAILURE() << "agreement over a NaN returned";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "agreement: item 1 is not a finite number (prediction nan, ground truth 2)");
  }
}

TEST(Metrics, KendallHandlesManyTiesLikeThePairwiseDefinition) {
  // Brute force over all pairs on a vector with heavy ties in both.
  std::vector<double> x, y;
  for (int i = 0; i < 200; ++i) {
    x.push_back((i * 37) % 11);
    y.push_back((i * 53) % 7 + ((i * 37) % 11 > 5 ? 3 : 0));
  }
  double c = 0, d = 0, tx = 0, ty = 0;
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = i + 1; j < x.size(); ++j) {
      const double s = (x[i] - x[j]) * (y[i] - y[j]);
      if (s > 0)
        ++c;
      else if (s < 0)
        ++d;
      else if (x[i] == x[j] && y[i] != y[j])
        ++tx;
      else if (y[i] == y[j] && x[i] != x[j])
        ++ty;
    }
  EXPECT_NEAR(kendall_tau_b(x, y), (c - d) / std::sqrt((c + d + tx) * (c + d + ty)), 1e-14);
}
