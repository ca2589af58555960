// Checks the kernels of kernels/src on the CPU emulator against straightforward restatements of the CPU semantics of
// io.csattention.core (CSAttentionIndex.build, KMeans, PackedLists, KeySketch, CSAttentionSelector, Selections,
// Attention, TopK, and the forward pass of io.csattention.model: LlamaModel, Session), and the decode kernels against the selections the Java CSAttentionSelector made of a seeded case
// (fixtures/), launching them with the same configurations as io.csattention.device.cuda. Run by
// kernels/emulator/run.sh.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <set>
#include <string>

inline int min(int a, int b) { return a < b ? a : b; }

#include "cuda_emulator.h"
#include "../src/prefill.cu"
#include "../src/decode.cu"
#include "../src/attention.cu"
#include "../src/forward.cu"

static int failures = 0;

static void expect(bool condition, const std::string& what) {
    if (!condition) {
        std::printf("FAIL %s\n", what.c_str());
        failures++;
    }
}

static bool better(float sa, int ia, float sb, int ib) {
    return sa > sb || (sa == sb && ia < ib);
}

// TopK.largest: the best k (score desc, id asc) of (scores[i], ids[i]); returned sorted best first.
static std::vector<int> topK(const std::vector<float>& scores, const std::vector<int>& ids, int k) {
    std::vector<int> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return better(scores[a], ids[a], scores[b], ids[b]); });
    std::vector<int> out;
    for (int i = 0; i < k && i < (int) order.size(); i++) {
        out.push_back(ids[order[i]]);
    }
    return out;
}

static float dot(const float* a, const float* b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) {
        s = fmaf(a[i], b[i], s);
    }
    return s;
}

static void checkTopKRows(std::mt19937& random) {
    // ties everywhere (few distinct values), -inf entries, k below, at and above count; 1024 threads as in Java
    int rows = 3;
    for (int count : {1, 31, 1000, 2500}) {
        for (int k : {1, 7, count / 2 + 1, count, count + 5}) {
            std::vector<float> scores(rows * count);
            std::uniform_int_distribution<int> level(0, 6);
            for (auto& s : scores) {
                int l = level(random);
                s = l == 0 ? -INFINITY : (l == 1 ? -0.0f : (float) (l - 3) * 0.5f);
            }
            int outStride = k + 3;
            std::vector<int> out(rows * outStride, -7);
            csa_emu_launch(rows, 1, 1024, [&] {
                top_k_rows(scores.data(), count, 0, nullptr, 0, 100, count, k, out.data(), outStride, 2);
            });
            for (int r = 0; r < rows; r++) {
                std::vector<float> s(scores.begin() + r * count, scores.begin() + (r + 1) * count);
                for (auto& v : s) v = v + 0.0f;
                std::vector<int> ids(count);
                std::iota(ids.begin(), ids.end(), 100);
                std::vector<int> want = topK(s, ids, k);
                std::sort(want.begin(), want.end());
                while ((int) want.size() < k) want.push_back(-1);
                std::vector<int> got(out.begin() + r * outStride + 2, out.begin() + r * outStride + 2 + k);
                expect(got == want, "top_k_rows count=" + std::to_string(count) + " k=" + std::to_string(k)
                        + " row " + std::to_string(r));
                expect(out[r * outStride] == -7 && out[r * outStride + 1] == -7, "top_k_rows writes only its range");
            }
        }
    }
}

static void checkKMeans(std::mt19937& random) {
    int n = 301, width = 16, k = 9;
    std::normal_distribution<float> gauss;
    std::vector<float> points(n * width), centroids(k * width);
    for (auto& v : points) v = gauss(random);
    for (int c = 0; c < k; c++) {
        std::copy_n(points.begin() + c * 7 * width, width, centroids.begin() + c * width);
    }
    centroids[8 * width] = 1e6f;  // cluster 8 ends up empty
    std::vector<int> assignment(n, 0), counts(k);
    std::vector<float> distance(n);
    int changed = 0;
    csa_emu_launch((n + 255) / 256, 1, 256, [&] {
        kmeans_assign(points.data(), n, width, centroids.data(), k, assignment.data(), distance.data(), &changed);
    });
    std::vector<double> sums(k * width);
    std::vector<int> wantCounts(k);
    bool anyChanged = false;
    for (int i = 0; i < n; i++) {
        int best = 0;
        float bestDistance = INFINITY;
        for (int c = 0; c < k; c++) {
            float s = 0;
            for (int t = 0; t < width; t++) {
                float diff = points[i * width + t] - centroids[c * width + t];
                s = fmaf(diff, diff, s);
            }
            if (s < bestDistance) {
                bestDistance = s;
                best = c;
            }
        }
        anyChanged |= best != 0;
        expect(assignment[i] == best && distance[i] == bestDistance, "kmeans_assign point " + std::to_string(i));
        wantCounts[best]++;
        for (int t = 0; t < width; t++) sums[best * width + t] += points[i * width + t];
    }
    expect((changed != 0) == anyChanged, "kmeans_assign changed flag");
    int threads = (256 / width) * width;
    std::vector<float> updated = centroids;
    csa_emu_launch(k, 1, threads, [&] {
        kmeans_update(points.data(), n, width, assignment.data(), k, updated.data(), counts.data());
    });
    for (int c = 0; c < k; c++) {
        expect(counts[c] == wantCounts[c], "kmeans_update count " + std::to_string(c));
        for (int t = 0; t < width; t++) {
            float want = wantCounts[c] > 0 ? (float) (sums[c * width + t] / wantCounts[c]) : centroids[c * width + t];
            expect(std::fabs(updated[c * width + t] - want) <= 1e-6f * (1 + std::fabs(want)),
                   "kmeans_update centroid " + std::to_string(c));
        }
    }
    expect(wantCounts[8] == 0, "test setup: cluster 8 empty");
}

struct Index {
    int n, d, m, c, L, width;
    std::vector<float> keys, values, centroids, listScores, floors, missing;
    std::vector<int> listIds;
};

static void checkListBuild(Index& index, int missingMode, std::mt19937& random) {
    int n = index.n, d = index.d, m = index.m, c = index.c, L = index.L, width = index.width;
    int padded = L == 1 ? 1 : 1 << (32 - __builtin_clz(L - 1));
    std::vector<float> scores((size_t) c * n), scratchScores((size_t) c * padded);
    std::vector<int> scratchIds((size_t) c * padded);
    index.listIds.assign((size_t) m * c * L, 0);
    index.listScores.assign((size_t) m * c * L, 0);
    index.floors.assign(m * c, 0);
    index.missing.assign(m * c, 0);
    for (int j = 0; j < m; j++) {
        std::memset(csa_emu_dynamic_shared, 0, 32 * width * 4);
        csa_emu_launch((n + 255) / 256, (c + 31) / 32, 256, [&] {
            centroid_key_scores(index.centroids.data() + (size_t) j * c * width, c, width, index.keys.data(), n, d,
                                j * width, scores.data());
        });
        csa_emu_launch(c, 1, 1024, [&] {
            build_lists(scores.data(), n, L, padded, j * c, missingMode, scratchIds.data(), scratchScores.data(),
                        index.listIds.data(), index.listScores.data(), index.floors.data(), index.missing.data());
        });
        for (int cc = 0; cc < c; cc++) {
            int list = j * c + cc;
            std::vector<float> s(n);
            std::vector<int> ids(n);
            double total = 0;
            for (int i = 0; i < n; i++) {
                s[i] = dot(&index.centroids[(size_t) list * width], &index.keys[(size_t) i * d + j * width], width);
                ids[i] = i;
                total += s[i];
            }
            std::vector<int> want = topK(s, ids, L);
            bool same = true;
            double kept = 0;
            for (int r = 0; r < L; r++) {
                same &= index.listIds[(size_t) list * L + r] == want[r];
                same &= index.listScores[(size_t) list * L + r] == s[want[r]];
                kept += s[want[r]];
            }
            expect(same, "build_lists list " + std::to_string(list) + " ids and scores in order");
            float floor = s[want[L - 1]];
            expect(index.floors[list] == floor, "build_lists floor " + std::to_string(list));
            float estimate = missingMode == 0 ? floor
                    : missingMode == 2 ? 0.0f : (n > L ? (float) ((total - kept) / (n - L)) : floor);
            expect(std::fabs(index.missing[list] - estimate) <= 1e-5f * (1 + std::fabs(estimate)),
                   "build_lists estimate " + std::to_string(list) + " mode " + std::to_string(missingMode));
        }
    }
}

// Java's Math.round of a float: the nearest int, halves up.
static int javaRound(float value) {
    return (int) std::floor((double) value + 0.5);
}

// PackedLists.of restated: one unit for the index (the largest |score - missing| over 127), entries as units of
// (score - missing) rounded and saturated to +-127, each list sorted by ascending key and cut into blocks of 65,536.
struct Packed {
    int blocks;
    float unit;
    std::vector<int> starts;
    std::vector<unsigned short> offsets;
    std::vector<signed char> units;
};

static int toUnits(float difference, float unit) {
    return std::max(-127, std::min(127, javaRound(difference / unit)));
}

static Packed pack(const Index& index) {
    int lists = index.m * index.c, L = index.L;
    Packed p;
    p.blocks = std::max(1, (index.n + 65535) >> 16);
    float largest = 0;
    for (int list = 0; list < lists; list++) {
        for (int r = 0; r < L; r++) {
            largest = std::max(largest, std::fabs(index.listScores[(size_t) list * L + r] - index.missing[list]));
        }
    }
    p.unit = largest > 0 ? largest / 127 : 1.0f;
    p.starts.assign((size_t) lists * p.blocks + 1, 0);
    p.offsets.resize((size_t) lists * L);
    p.units.resize((size_t) lists * L);
    for (int list = 0; list < lists; list++) {
        std::vector<std::pair<int, int>> entries;
        for (int r = 0; r < L; r++) {
            size_t at = (size_t) list * L + r;
            entries.push_back({index.listIds[at], toUnits(index.listScores[at] - index.missing[list], p.unit)});
        }
        std::sort(entries.begin(), entries.end());
        std::vector<int> perBlock(p.blocks);
        for (int r = 0; r < L; r++) {
            p.offsets[(size_t) list * L + r] = (unsigned short) (entries[r].first & 0xffff);
            p.units[(size_t) list * L + r] = (signed char) entries[r].second;
            perBlock[entries[r].first >> 16]++;
        }
        int at = list * L;
        for (int b = 0; b < p.blocks; b++) {
            p.starts[(size_t) list * p.blocks + b] = at;
            at += perBlock[b];
        }
    }
    p.starts[(size_t) lists * p.blocks] = lists * L;
    return p;
}

// KeySketch restated: per row the scale |k|_max / 127 and codes round(k / scale) saturated to +-127 (scale 0 and
// zero codes for a zero row).
struct Sketch {
    std::vector<signed char> codes;
    std::vector<float> scales;
};

static Sketch sketchOf(const Index& index) {
    int n = index.n, d = index.d;
    Sketch s;
    s.codes.assign((size_t) n * d, 0);
    s.scales.assign(n, 0);
    for (int r = 0; r < n; r++) {
        float largest = 0;
        for (int i = 0; i < d; i++) largest = std::max(largest, std::fabs(index.keys[(size_t) r * d + i]));
        if (largest == 0) continue;
        float scale = largest / 127;
        float inverse = 1.0f / scale;
        for (int i = 0; i < d; i++) {
            int q = javaRound(index.keys[(size_t) r * d + i] * inverse);
            s.codes[(size_t) r * d + i] = (signed char) std::max(-127, std::min(127, q));
        }
        s.scales[r] = scale;
    }
    return s;
}

// The lists of an index too large for the emulated list build: per centroid the exact top-L keys by partial score
// (ties to the lower key), best first, with the floor as the estimate for absent keys.
static void exactLists(Index& index) {
    int n = index.n, m = index.m, c = index.c, L = index.L, width = index.width;
    index.listIds.assign((size_t) m * c * L, 0);
    index.listScores.assign((size_t) m * c * L, 0);
    index.floors.assign(m * c, 0);
    index.missing.assign(m * c, 0);
    for (int j = 0; j < m; j++) {
        for (int cc = 0; cc < c; cc++) {
            int list = j * c + cc;
            std::vector<float> s(n);
            std::vector<int> ids(n);
            for (int i = 0; i < n; i++) {
                s[i] = dot(&index.centroids[(size_t) list * width], &index.keys[(size_t) i * index.d + j * width],
                           width);
                ids[i] = i;
            }
            std::vector<int> top = topK(s, ids, L);
            for (int r = 0; r < L; r++) {
                index.listIds[(size_t) list * L + r] = top[r];
                index.listScores[(size_t) list * L + r] = s[top[r]];
            }
            index.floors[list] = s[top[L - 1]];
            index.missing[list] = index.floors[list];
        }
    }
}

// Near-ties the re-scoring may break differently from the CPU: keys whose sketch scores, computed in double, are
// within this bound of each other (twice the worst-case float error of a d-term sum, 2 d 2^-24 sum |x_i c_i| scale).
static double sketchError(const float* query, const Sketch& sketch, int d, int id) {
    double magnitude = 0;
    for (int t = 0; t < d; t++) magnitude += std::fabs((double) query[t] * sketch.codes[(size_t) id * d + t]);
    return 2.0 * d * std::ldexp(1.0, -24) * magnitude * sketch.scales[id];
}

static int nearTieDifferences = 0;

static void checkDecode(const Index& index, const Packed& packed, const Sketch& sketch, int queries, int budget,
                        int sink, int window, double rescoreFactor, bool useL2, std::mt19937& random) {
    int n = index.n, d = index.d, m = index.m, c = index.c, L = index.L;
    int from = sink, to = n - window, chosen = budget - sink - window;
    std::string what = "decode n=" + std::to_string(n) + " budget=" + std::to_string(budget) + ": ";
    std::normal_distribution<float> gauss;
    std::vector<float> q((size_t) queries * d);
    for (int r = 0; r < queries; r++) {
        for (int t = 0; t < d; t++) {
            q[r * d + t] = 0.8f * index.keys[(size_t) (r * 37 % n) * d + t] + 0.3f * gauss(random);
        }
    }
    // the kernels, launched as CudaContextDecoder launches them
    std::vector<int> lists(queries * m), selected((size_t) queries * budget, -9);
    csa_emu_launch(m, queries, 128, [&] {
        nearest_centroids(q.data(), d, m, c, index.centroids.data(), useL2 ? 1 : 0, lists.data());
    });
    std::vector<int> sums((size_t) queries * n, 0);
    csa_emu_launch((m * L + 255) / 256, queries, 256, [&] {
        accumulate_lists(lists.data(), m, packed.starts.data(), packed.blocks, packed.offsets.data(),
                         packed.units.data(), L, from, to, sums.data(), n);
    });
    int wanted = rescoreFactor > 0 ? (int) std::min<double>(to - from, std::ceil(rescoreFactor * chosen)) : chosen;
    bool rescored = chosen > 0 && wanted > chosen;
    std::vector<int> candidates((size_t) queries * wanted);
    std::vector<float> exact((size_t) queries * wanted);
    if (rescored) {
        csa_emu_launch(queries, 1, 1024, [&] {
            top_k_sums(sums.data(), n, from, to, wanted, candidates.data(), wanted, 0);
        });
        csa_emu_launch((wanted + 7) / 8, queries, 256, [&] {
            rescore_codes(q.data(), sketch.codes.data(), sketch.scales.data(), d, candidates.data(), wanted,
                          exact.data());
        });
        csa_emu_launch(queries, 1, 1024, [&] {
            top_k_rows(exact.data(), wanted, 0, candidates.data(), wanted, 0, wanted, chosen, selected.data(), budget,
                       sink);
        });
    } else if (chosen > 0) {
        csa_emu_launch(queries, 1, 1024, [&] {
            top_k_sums(sums.data(), n, from, to, chosen, selected.data(), budget, sink);
        });
    }
    csa_emu_launch(queries, 1, 128, [&] { sink_and_window(selected.data(), budget, sink, window, n); });
    int chunk = 256;
    int splits = (budget + chunk - 1) / chunk;
    std::vector<float> partMax(queries * splits), partSum(queries * splits), partAcc((size_t) queries * splits * d),
            out((size_t) queries * d);
    float scale = (float) (1.0 / std::sqrt((double) d));
    csa_emu_launch(splits, queries, 128, [&] {
        attend_partial(q.data(), index.keys.data(), index.values.data(), d, selected.data(), budget, budget, chunk,
                       scale, partMax.data(), partSum.data(), partAcc.data());
    });
    csa_emu_launch(queries, 1, 128, [&] {
        attend_combine(partMax.data(), partSum.data(), partAcc.data(), splits, d, out.data());
    });

    // the reference: CSAttentionSelector.select (from the build-form lists, not the packed layout) +
    // Selections.assembleAscending + Attention.attend
    for (int r = 0; r < queries; r++) {
        std::string where = what + "query " + std::to_string(r) + " ";
        const float* query = &q[(size_t) r * d];
        std::vector<int> sum(n, 0);
        for (int j = 0; j < m; j++) {
            int best = 0;
            float bestValue = -INFINITY;
            for (int cc = 0; cc < c; cc++) {
                const float* centroid = &index.centroids[((size_t) j * c + cc) * index.width];
                float value = 0;
                for (int t = 0; t < index.width; t++) {
                    float a = query[j * index.width + t];
                    value = useL2 ? fmaf(a - centroid[t], a - centroid[t], value) : fmaf(a, centroid[t], value);
                }
                if (useL2) value = -value;
                if (value > bestValue) {
                    bestValue = value;
                    best = cc;
                }
            }
            int list = j * c + best;
            expect(lists[r * m + j] == list, where + "nearest_centroids subspace " + std::to_string(j));
            for (int e = 0; e < L; e++) {
                int id = index.listIds[(size_t) list * L + e];
                if (id < from || id >= to) continue;
                sum[id] += toUnits(index.listScores[(size_t) list * L + e] - index.missing[list], packed.unit);
            }
        }
        bool sumsEqual = true;
        for (int id = 0; id < n; id++) sumsEqual &= sums[(size_t) r * n + id] == sum[id];
        expect(sumsEqual, where + "accumulate_lists: integer sums");
        // cut by sums: the best `wanted` by (sum desc, id asc), ascending
        std::vector<float> range(to - from);
        std::vector<int> ids(to - from);
        for (int id = from; id < to; id++) {
            range[id - from] = (float) sum[id];
            ids[id - from] = id;
        }
        std::vector<int> picked = topK(range, ids, wanted);
        std::sort(picked.begin(), picked.end());
        std::vector<int> want = picked;
        if (rescored) {
            std::vector<int> gotCandidates(candidates.begin() + (size_t) r * wanted,
                                           candidates.begin() + (size_t) (r + 1) * wanted);
            expect(gotCandidates == picked, where + "top_k_sums: the CPU's candidates, ascending");
            // re-scoring over the sketch in double; the kernel's float sums within their rounding of it
            std::vector<double> e(wanted);
            std::vector<float> own(wanted);
            for (int i = 0; i < wanted; i++) {
                double s = 0;
                for (int t = 0; t < d; t++) s += (double) query[t] * sketch.codes[(size_t) picked[i] * d + t];
                e[i] = s * sketch.scales[picked[i]];
                own[i] = exact[(size_t) r * wanted + i];
                expect(std::fabs(own[i] - e[i]) <= sketchError(query, sketch, d, picked[i]) + 1e-30,
                       where + "rescore_codes candidate " + std::to_string(picked[i]));
            }
            // the kernels' top-k of their own scores is exact (TopK.keepLargest: ties to the lower key) ...
            std::vector<int> fromOwn = topK(own, picked, chosen);
            std::sort(fromOwn.begin(), fromOwn.end());
            std::vector<int> gotChosen(selected.begin() + (size_t) r * budget + sink,
                                       selected.begin() + (size_t) r * budget + sink + chosen);
            expect(gotChosen == fromOwn, where + "top_k_rows over the re-scored candidates");
            // ... and differs from the best by the double scores only at near-ties of the cut
            std::vector<float> rounded(wanted);
            for (int i = 0; i < wanted; i++) rounded[i] = (float) e[i];
            want = topK(rounded, picked, chosen);
            std::sort(want.begin(), want.end());
            double cut = INFINITY, cutError = 0;
            for (int i = 0; i < wanted; i++) {
                if (std::binary_search(want.begin(), want.end(), picked[i]) && e[i] < cut) {
                    cut = e[i];
                    cutError = sketchError(query, sketch, d, picked[i]);
                }
            }
            for (int i = 0; i < wanted; i++) {
                bool inWant = std::binary_search(want.begin(), want.end(), picked[i]);
                bool inGot = std::binary_search(gotChosen.begin(), gotChosen.end(), picked[i]);
                if (inWant != inGot) {
                    nearTieDifferences++;
                    expect(std::fabs(e[i] - cut) <= sketchError(query, sketch, d, picked[i]) + cutError,
                           where + "selection differs from the double re-scoring away from the cut at key "
                           + std::to_string(picked[i]));
                }
            }
        } else {
            std::vector<int> gotChosen(selected.begin() + (size_t) r * budget + sink,
                                       selected.begin() + (size_t) r * budget + sink + chosen);
            expect(gotChosen == picked, where + "top_k_sums: the CPU's literal selection, ascending");
        }
        std::vector<int> got(selected.begin() + (size_t) r * budget, selected.begin() + (size_t) (r + 1) * budget);
        expect(std::is_sorted(got.begin(), got.end()) && got.front() >= 0, where + "selection ascending");
        for (int i = 0; i < sink; i++) expect(got[i] == i, where + "sink key " + std::to_string(i));
        for (int i = 0; i < window; i++) {
            expect(got[budget - window + i] == n - window + i, where + "window key " + std::to_string(i));
        }
        // attention over the kernels' own selection, in double
        std::vector<double> w(budget);
        double maxScore = -INFINITY;
        for (int s = 0; s < budget; s++) {
            double v = 0;
            for (int t = 0; t < d; t++) v += (double) query[t] * index.keys[(size_t) got[s] * d + t];
            w[s] = v * scale;
            maxScore = std::max(maxScore, w[s]);
        }
        double total = 0;
        for (auto& v : w) {
            v = std::exp(v - maxScore);
            total += v;
        }
        double diff = 0, norm = 0;
        for (int t = 0; t < d; t++) {
            double o = 0;
            for (int s = 0; s < budget; s++) o += w[s] / total * index.values[(size_t) got[s] * d + t];
            diff += (o - out[(size_t) r * d + t]) * (o - out[(size_t) r * d + t]);
            norm += o * o;
        }
        expect(std::sqrt(diff / norm) < 1e-4, where + "attention output error "
                + std::to_string(std::sqrt(diff / norm)));
    }
}

// The decode kernels on the data CSAttentionSelector decoded in Java (fixtures/decode-cpu-selector.txt, written by
// spark-csattention's GpuDecodeFixtureTest): the kernels must select what the Java selector selected, key for key
// but for near-ties of the re-scoring cut (the sums are integers and exact; the re-scoring's float sum runs in SIMD
// lanes there, in warp lanes here).
static bool readRecord(std::ifstream& in, const std::string& name, std::vector<int>& values) {
    std::string got;
    size_t count = 0;
    if (!(in >> got >> count) || got != name) {
        std::printf("FAIL fixture: expected record %s, found %s\n", name.c_str(), got.c_str());
        failures++;
        return false;
    }
    values.resize(count);
    for (auto& v : values) in >> v;
    return (bool) in;
}

static std::vector<float> asFloats(const std::vector<int>& bits) {
    std::vector<float> out(bits.size());
    for (size_t i = 0; i < bits.size(); i++) out[i] = __int_as_float(bits[i]);
    return out;
}

static void checkFixture(const char* path) {
    std::ifstream in(path);
    expect((bool) in, std::string("fixture ") + path + " readable");
    std::string word, name;
    int cases = 0;
    while (in >> word >> name) {
        expect(word == "case", "fixture: a case record");
        std::vector<int> shape, queryBits, centroidBits, starts, offsets, units, codes, scaleBits, want;
        if (!readRecord(in, "shape", shape) || !readRecord(in, "queries", queryBits)
                || !readRecord(in, "centroids", centroidBits) || !readRecord(in, "starts", starts)
                || !readRecord(in, "offsets", offsets) || !readRecord(in, "units", units)
                || !readRecord(in, "codes", codes) || !readRecord(in, "scales", scaleBits)
                || !readRecord(in, "selected", want)) {
            return;
        }
        int n = shape[0], d = shape[1], m = shape[2], c = shape[3], L = shape[4], useL2 = shape[5], budget = shape[6],
            sink = shape[7], window = shape[8], chosen = shape[9], wanted = shape[10], queries = shape[11],
            blocks = shape[12];
        int from = sink, to = n - window;
        std::vector<float> q = asFloats(queryBits), centroids = asFloats(centroidBits), scales = asFloats(scaleBits);
        std::vector<unsigned short> packedOffsets(offsets.begin(), offsets.end());
        std::vector<signed char> packedUnits(units.begin(), units.end());
        Sketch sketch;
        sketch.codes.assign(codes.begin(), codes.end());
        sketch.scales = scales;
        std::vector<int> lists(queries * m), selected((size_t) queries * budget, -9), sums((size_t) queries * n, 0);
        csa_emu_launch(m, queries, 128, [&] {
            nearest_centroids(q.data(), d, m, c, centroids.data(), useL2, lists.data());
        });
        csa_emu_launch((m * L + 255) / 256, queries, 256, [&] {
            accumulate_lists(lists.data(), m, starts.data(), blocks, packedOffsets.data(), packedUnits.data(), L, from,
                             to, sums.data(), n);
        });
        bool rescored = chosen > 0 && wanted > chosen;
        std::vector<int> candidates((size_t) queries * wanted);
        std::vector<float> exact((size_t) queries * wanted);
        if (rescored) {
            csa_emu_launch(queries, 1, 1024, [&] {
                top_k_sums(sums.data(), n, from, to, wanted, candidates.data(), wanted, 0);
            });
            csa_emu_launch((wanted + 7) / 8, queries, 256, [&] {
                rescore_codes(q.data(), sketch.codes.data(), sketch.scales.data(), d, candidates.data(), wanted,
                              exact.data());
            });
            csa_emu_launch(queries, 1, 1024, [&] {
                top_k_rows(exact.data(), wanted, 0, candidates.data(), wanted, 0, wanted, chosen, selected.data(),
                           budget, sink);
            });
        } else if (chosen > 0) {
            csa_emu_launch(queries, 1, 1024, [&] {
                top_k_sums(sums.data(), n, from, to, chosen, selected.data(), budget, sink);
            });
        }
        csa_emu_launch(queries, 1, 128, [&] { sink_and_window(selected.data(), budget, sink, window, n); });
        for (int r = 0; r < queries; r++) {
            std::string where = "fixture " + name + " query " + std::to_string(r) + ": ";
            const float* query = &q[(size_t) r * d];
            std::vector<int> expected(want.begin() + (size_t) r * budget, want.begin() + (size_t) (r + 1) * budget);
            std::vector<int> got(selected.begin() + (size_t) r * budget, selected.begin() + (size_t) (r + 1) * budget);
            if (got == expected) continue;
            expect(rescored, where + "the literal selection differs from CSAttentionSelector's");
            double cut = INFINITY, cutError = 0;
            for (int id : expected) {
                if (id < from || id >= to) continue;
                double s = 0;
                for (int t = 0; t < d; t++) s += (double) query[t] * sketch.codes[(size_t) id * d + t];
                s *= sketch.scales[id];
                if (s < cut) {
                    cut = s;
                }
                cutError = std::max(cutError, sketchError(query, sketch, d, id));
            }
            std::vector<int> difference;
            std::set_symmetric_difference(expected.begin(), expected.end(), got.begin(), got.end(),
                                          std::back_inserter(difference));
            for (int id : difference) {
                double s = 0;
                for (int t = 0; t < d; t++) s += (double) query[t] * sketch.codes[(size_t) id * d + t];
                s *= sketch.scales[id];
                nearTieDifferences++;
                expect(std::fabs(s - cut) <= 2 * (sketchError(query, sketch, d, id) + cutError),
                       where + "key " + std::to_string(id) + " differs from CSAttentionSelector's selection away "
                       "from a near-tie of the re-scoring cut");
            }
        }
        cases++;
    }
    expect(cases == 2, "fixture: two cases, read " + std::to_string(cases));
}

static void checkFullAttention(const Index& index, bool tiled, std::mt19937& random) {
    int n = index.n, d = index.d, queries = tiled ? 11 : 3, chunk = 256;
    std::normal_distribution<float> gauss;
    std::vector<float> q((size_t) queries * d);
    for (auto& v : q) v = gauss(random);
    int splits = (n + chunk - 1) / chunk;
    std::vector<float> partMax(queries * splits), partSum(queries * splits), partAcc((size_t) queries * splits * d),
            out((size_t) queries * d);
    float scale = (float) (1.0 / std::sqrt((double) d));
    if (tiled) {
        csa_emu_launch(splits, (queries + ATTEND_QUERY_TILE - 1) / ATTEND_QUERY_TILE, 128, [&] {
            attend_all_tiled(q.data(), queries, index.keys.data(), index.values.data(), d, n, chunk, scale,
                             partMax.data(), partSum.data(), partAcc.data());
        });
    } else {
        csa_emu_launch(splits, queries, 128, [&] {
            attend_partial(q.data(), index.keys.data(), index.values.data(), d, nullptr, 0, n, chunk, scale,
                           partMax.data(), partSum.data(), partAcc.data());
        });
    }
    csa_emu_launch(queries, 1, 128, [&] {
        attend_combine(partMax.data(), partSum.data(), partAcc.data(), splits, d, out.data());
    });
    for (int r = 0; r < queries; r++) {
        std::vector<double> w(n);
        double maxScore = -INFINITY;
        for (int i = 0; i < n; i++) {
            double v = 0;
            for (int t = 0; t < d; t++) v += (double) q[r * d + t] * index.keys[(size_t) i * d + t];
            w[i] = v * scale;
            maxScore = std::max(maxScore, w[i]);
        }
        double total = 0;
        for (auto& v : w) {
            v = std::exp(v - maxScore);
            total += v;
        }
        double diff = 0, norm = 0;
        for (int t = 0; t < d; t++) {
            double o = 0;
            for (int i = 0; i < n; i++) o += w[i] / total * index.values[(size_t) i * d + t];
            diff += (o - out[r * d + t]) * (o - out[r * d + t]);
            norm += o * o;
        }
        expect(std::sqrt(diff / norm) < 1e-4, std::string(tiled ? "tiled " : "") + "full attention query "
                + std::to_string(r));
    }
}

// The block-GEMM form (gemm_scores, softmax_rows, gemm_values, gemm_sum_splits), launched as
// CudaContextDecoder.attendAllGemm launches them, against attention in float64: queries past one tile of 64, keys
// past the splits, a head dimension that is no multiple of the GEMM step.
static void checkGemmAttention(int n, int d, int queries, int splitKeys, std::mt19937& random) {
    std::normal_distribution<float> gauss;
    std::vector<float> keys((size_t) n * d), values((size_t) n * d), q((size_t) queries * d);
    for (auto& v : keys) v = gauss(random);
    for (auto& v : values) v = gauss(random);
    for (auto& v : q) v = gauss(random);
    float scale = (float) (1.0 / std::sqrt((double) d));
    int splits = (n + splitKeys - 1) / splitKeys;
    int colTiles = (d + CSA_GEMM_TILE - 1) / CSA_GEMM_TILE;
    int rowTiles = (queries + CSA_GEMM_TILE - 1) / CSA_GEMM_TILE;
    std::vector<float> scores((size_t) queries * n), rowSums(queries), partial((size_t) splits * queries * d),
            out((size_t) queries * d);
    csa_emu_launch((n + CSA_GEMM_TILE - 1) / CSA_GEMM_TILE, rowTiles, 256, [&] {
        gemm_scores(q.data(), queries, keys.data(), n, d, scale, scores.data());
    });
    csa_emu_launch(queries, 1, 1024, [&] { softmax_rows(scores.data(), n, rowSums.data()); });
    csa_emu_launch(colTiles * splits, rowTiles, 256, [&] {
        gemm_values(scores.data(), queries, values.data(), n, d, splitKeys, partial.data());
    });
    csa_emu_launch((queries * d + 255) / 256, 1, 256, [&] {
        gemm_sum_splits(partial.data(), splits, queries, d, rowSums.data(), out.data());
    });
    for (int r = 0; r < queries; r++) {
        std::vector<double> w(n);
        double maxScore = -INFINITY;
        for (int i = 0; i < n; i++) {
            double v = 0;
            for (int t = 0; t < d; t++) v += (double) q[(size_t) r * d + t] * keys[(size_t) i * d + t];
            w[i] = v * scale;
            maxScore = std::max(maxScore, w[i]);
        }
        double total = 0;
        for (auto& v : w) {
            v = std::exp(v - maxScore);
            total += v;
        }
        double diff = 0, norm = 0;
        for (int t = 0; t < d; t++) {
            double o = 0;
            for (int i = 0; i < n; i++) o += w[i] / total * values[(size_t) i * d + t];
            diff += (o - out[(size_t) r * d + t]) * (o - out[(size_t) r * d + t]);
            norm += o * o;
        }
        expect(std::sqrt(diff / norm) < 1e-4, "gemm attention n=" + std::to_string(n) + " d=" + std::to_string(d)
                + " query " + std::to_string(r));
    }
}

// The forward kernels against float64: linear (the projections, with bias and residual, any size: tiles of 64 tokens
// and 64 rows cut at the edges, an inner length that is no multiple of the 16-step), rms_norm, rope_rows (interleaved
// pairs, a partial rotation, far positions), silu_gate.
static void checkForwardPieces(int tokens, int cols, int rows, std::mt19937& random) {
    std::normal_distribution<float> gauss;
    std::vector<float> x((size_t) tokens * cols), w((size_t) rows * cols), bias(rows), residual((size_t) tokens * rows);
    for (auto& v : x) v = gauss(random);
    for (auto& v : w) v = gauss(random);
    for (auto& v : bias) v = gauss(random);
    for (auto& v : residual) v = gauss(random);
    std::string size = " tokens=" + std::to_string(tokens) + " cols=" + std::to_string(cols) + " rows="
            + std::to_string(rows);
    for (int variant = 0; variant < 3; variant++) {
        // 0: plain product; 1: with bias, into a separate output; 2: bias and residual in place (out == residual)
        std::vector<float> out = variant == 2 ? residual : std::vector<float>((size_t) tokens * rows, -7.0f);
        const float* b = variant == 0 ? nullptr : bias.data();
        const float* res = variant == 2 ? out.data() : nullptr;
        csa_emu_launch((rows + 63) / 64, (tokens + 63) / 64, 256, [&] {
            linear(x.data(), tokens, cols, w.data(), rows, b, res, out.data());
        });
        int bad = 0;
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                double want = 0, magnitude = 0;
                for (int c = 0; c < cols; c++) {
                    double term = (double) x[(size_t) t * cols + c] * w[(size_t) r * cols + c];
                    want += term;
                    magnitude += std::fabs(term);
                }
                if (variant >= 1) want += bias[r];
                if (variant == 2) want += residual[(size_t) t * rows + r];
                bad += std::fabs(out[(size_t) t * rows + r] - want) > 2e-6 * magnitude + 1e-6 * std::fabs(want);
            }
        }
        expect(bad == 0, "linear variant " + std::to_string(variant) + size + ": " + std::to_string(bad)
                + " elements off");
    }

    // rms_norm over rows of `cols`, out of place and in place; every third row small enough that eps matters
    std::vector<float> weight(cols);
    for (auto& v : weight) v = 1.0f + 0.1f * gauss(random);
    float eps = 1e-5f;
    for (int t = 0; t < tokens; t += 3) {
        for (int c = 0; c < cols; c++) x[(size_t) t * cols + c] *= 1e-3f;
    }
    for (bool inPlace : {false, true}) {
        std::vector<float> out = inPlace ? x : std::vector<float>(x.size());
        csa_emu_launch(tokens, 1, 256, [&] {
            rms_norm(inPlace ? out.data() : x.data(), cols, weight.data(), eps, out.data());
        });
        int bad = 0;
        for (int t = 0; t < tokens; t++) {
            double ss = 0;
            for (int c = 0; c < cols; c++) ss += (double) x[(size_t) t * cols + c] * x[(size_t) t * cols + c];
            double scale = 1.0 / std::sqrt(ss / cols + eps);
            for (int c = 0; c < cols; c++) {
                double want = weight[c] * scale * x[(size_t) t * cols + c];
                bad += std::fabs(out[(size_t) t * cols + c] - want) > 1e-5 * std::fabs(want) + 1e-7;
            }
        }
        expect(bad == 0, std::string("rms_norm") + (inPlace ? " in place" : "") + size);
    }

    // rope_rows: 3 heads of 24 dimensions, the first 16 rotated (8 pairs), positions up to 40,000
    int headSize = 24, heads = 3, pairs = 8, width = heads * headSize;
    std::vector<float> frequencies(pairs), qk((size_t) tokens * width);
    for (int i = 0; i < pairs; i++) frequencies[i] = (float) (1.0 / std::pow(500000.0, 2.0 * i / 16));
    for (auto& v : qk) v = gauss(random);
    std::vector<int> positions(tokens);
    std::uniform_int_distribution<int> position(0, 40000);
    for (auto& p : positions) p = position(random);
    std::vector<float> rotated = qk;
    csa_emu_launch(tokens, 1, 128, [&] {
        rope_rows(rotated.data(), width, headSize, pairs, frequencies.data(), positions.data());
    });
    int bad = 0;
    for (int t = 0; t < tokens; t++) {
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < headSize; i += 2) {
                size_t at = (size_t) t * width + h * headSize + i;
                double v0 = qk[at], v1 = qk[at + 1], want0 = v0, want1 = v1;
                if (i / 2 < pairs) {
                    double angle = (float) positions[t] * frequencies[i / 2];  // the float angle LlamaModel uses
                    want0 = v0 * std::cos(angle) - v1 * std::sin(angle);
                    want1 = v0 * std::sin(angle) + v1 * std::cos(angle);
                }
                double bound = 1e-6 * (std::fabs(v0) + std::fabs(v1)) + 1e-7;
                bad += std::fabs(rotated[at] - want0) > bound || std::fabs(rotated[at + 1] - want1) > bound;
            }
        }
    }
    expect(bad == 0, "rope_rows" + size + ": " + std::to_string(bad) + " pairs off");

    // silu_gate over tokens x rows
    std::vector<float> gate = residual, up((size_t) tokens * rows);
    for (auto& v : up) v = gauss(random);
    long long n = (long long) tokens * rows;
    csa_emu_launch((unsigned) ((n + 255) / 256), 1, 256, [&] { silu_gate(gate.data(), up.data(), n); });
    bad = 0;
    for (long long i = 0; i < n; i++) {
        double g = residual[i];
        double want = g / (1 + std::exp(-g)) * up[i];
        bad += std::fabs(gate[i] - want) > 1e-6 * std::fabs(want) + 1e-7;
    }
    expect(bad == 0, "silu_gate" + size);
}

// attend_causal as GpuModelForward launches it: `count` new tokens at positions start .., over the keys and values
// of positions [0, start + count), heads query heads over kvHeads KV heads, against causal softmax attention in
// float64 (query head h reads KV head h / (heads / kvHeads)).
static void checkCausalAttention(int start, int count, int heads, int kvHeads, int headSize, std::mt19937& random) {
    std::normal_distribution<float> gauss;
    int total = start + count;
    int kvStride = kvHeads * headSize, queryStride = heads * headSize;
    std::vector<float> keys((size_t) total * kvStride), values(keys.size()), queries((size_t) count * queryStride),
            out(queries.size(), -7.0f);
    for (auto& v : keys) v = gauss(random);
    for (auto& v : values) v = gauss(random);
    for (auto& v : queries) v = 2.0f * gauss(random);  // peaked softmax rows: a wrong mask or head is visible
    float scale = (float) (1.0 / std::sqrt((double) headSize));
    csa_emu_launch((count + FLASH_QUERIES - 1) / FLASH_QUERIES, heads, 128, [&] {
        attend_causal(queries.data(), count, start, keys.data(), values.data(), heads, kvHeads, headSize, scale,
                      out.data());
    });
    int bad = 0;
    for (int r = 0; r < count; r++) {
        for (int h = 0; h < heads; h++) {
            int g = h / (heads / kvHeads);
            const float* q = queries.data() + (size_t) r * queryStride + h * headSize;
            int n = start + r + 1;
            std::vector<double> w(n);
            double maxScore = -INFINITY, sum = 0;
            for (int i = 0; i < n; i++) {
                double s = 0;
                for (int t = 0; t < headSize; t++) s += (double) q[t] * keys[(size_t) i * kvStride + g * headSize + t];
                w[i] = s * scale;
                maxScore = std::max(maxScore, w[i]);
            }
            for (auto& v : w) {
                v = std::exp(v - maxScore);
                sum += v;
            }
            double diff = 0, norm = 0;
            for (int t = 0; t < headSize; t++) {
                double o = 0;
                for (int i = 0; i < n; i++) o += w[i] / sum * values[(size_t) i * kvStride + g * headSize + t];
                double got = out[(size_t) r * queryStride + h * headSize + t];
                diff += (o - got) * (o - got);
                norm += o * o;
            }
            bad += !(std::sqrt(diff / norm) < 2e-5);
        }
    }
    expect(bad == 0, "attend_causal start=" + std::to_string(start) + " count=" + std::to_string(count) + " heads="
            + std::to_string(heads) + "/" + std::to_string(kvHeads) + " d=" + std::to_string(headSize) + ": "
            + std::to_string(bad) + " of " + std::to_string(count * heads) + " rows off");
}

int main() {
    unsigned seed = 20261128u;
    std::printf("emulated kernel checks, seed %u\n", seed);
    std::mt19937 random(seed);
    checkTopKRows(random);
    std::printf("top_k_rows: %s\n", failures == 0 ? "ok" : "FAILED");
    checkKMeans(random);
    std::printf("kmeans_assign, kmeans_update: %s\n", failures == 0 ? "ok" : "FAILED");

    Index index;
    index.n = 1009;
    index.d = 32;
    index.m = 2;
    index.c = 9;
    index.width = 16;
    index.L = 203;
    std::normal_distribution<float> gauss;
    index.keys.resize((size_t) index.n * index.d);
    index.values.resize(index.keys.size());
    index.centroids.resize((size_t) index.m * index.c * index.width);
    for (auto& v : index.keys) v = gauss(random);
    for (auto& v : index.values) v = gauss(random);
    for (auto& v : index.centroids) v = gauss(random);
    for (int mode : {1, 2, 0}) {
        checkListBuild(index, mode, random);
    }
    std::printf("centroid_key_scores, build_lists: %s\n", failures == 0 ? "ok" : "FAILED");
    {
        Packed packed = pack(index);
        Sketch sketch = sketchOf(index);
        checkDecode(index, packed, sketch, 5, 101, 4, 12, 2.0, false, random);
        checkDecode(index, packed, sketch, 3, 101, 0, 0, 0.0, true, random);
        checkDecode(index, packed, sketch, 2, 16, 4, 12, 2.0, false, random);
        checkDecode(index, packed, sketch, 2, 333, 1, 7, 2.0, false, random);
    }
    {
        // more than one block of 65,536 keys: block starts and offsets in the packed lists, sums past the first block
        Index large;
        large.n = 70001;
        large.d = 16;
        large.m = 2;
        large.c = 5;
        large.width = 8;
        large.L = 3501;
        large.keys.resize((size_t) large.n * large.d);
        large.values.resize(large.keys.size());
        large.centroids.resize((size_t) large.m * large.c * large.width);
        for (auto& v : large.keys) v = gauss(random);
        for (auto& v : large.values) v = gauss(random);
        for (auto& v : large.centroids) v = gauss(random);
        exactLists(large);
        Packed packed = pack(large);
        expect(packed.blocks == 2, "test setup: two key blocks");
        Sketch sketch = sketchOf(large);
        checkDecode(large, packed, sketch, 2, 717, 4, 12, 2.0, false, random);
        checkDecode(large, packed, sketch, 2, 301, 1, 0, 0.0, false, random);
    }
    checkFixture("fixtures/decode-cpu-selector.txt");
    std::printf("decode pipeline and the Java selector's fixture: %s (%d selected keys differ from the references, "
                "each checked to be a near-tie)\n", failures == 0 ? "ok" : "FAILED", nearTieDifferences);
    checkFullAttention(index, false, random);
    checkFullAttention(index, true, random);
    std::printf("full attention, per query and tiled: %s\n", failures == 0 ? "ok" : "FAILED");
    checkGemmAttention(1009, 32, 70, 256, random);
    checkGemmAttention(300, 24, 5, 128, random);
    checkGemmAttention(129, 136, 65, 64, random);
    std::printf("full attention as block GEMMs: %s\n", failures == 0 ? "ok" : "FAILED");
    checkForwardPieces(37, 200, 70, random);
    checkForwardPieces(1, 64, 129, random);
    std::printf("forward: linear, rms_norm, rope_rows, silu_gate: %s\n", failures == 0 ? "ok" : "FAILED");
    checkCausalAttention(0, 129, 6, 2, 64, random);
    checkCausalAttention(61, 68, 3, 1, 128, random);
    checkCausalAttention(5, 3, 4, 4, 40, random);
    std::printf("forward: causal attention (GQA, online softmax): %s\n", failures == 0 ? "ok" : "FAILED");
    std::printf("%s (%d failures)\n", failures == 0 ? "ALL OK" : "FAILED", failures);
    return failures == 0 ? 0 : 1;
}
