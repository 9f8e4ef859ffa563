// test_comm.cpp: the thread communicator's collectives, and data parallelism over it: with the
// contrastive losses gathering embeddings with gradient and the ranks averaging gradients, two ranks
// with half a batch each compute the loss and the gradients of one process with the whole batch.

#include <algorithm>
#include <map>

#include "engine/autograd/grad_mode.h"
#include "engine/dist/comm.h"
#include "models/losses.h"
#include "test_util.h"
#include "thread_ranks.h"

using namespace aclip;
using aclip::test::random_tensor;

namespace {

// Counts the collectives of the communicator it wraps.
class Counting : public Comm {
  public:
    explicit Counting(Comm& inner) : inner_(inner) {}
    int rank() const override { return inner_.rank(); }
    int world() const override { return inner_.world(); }
    void all_reduce_sum(Tensor& t) override {
        ++reductions;
        inner_.all_reduce_sum(t);
    }
    Tensor all_gather(const Tensor& t) override {
        ++gathers;
        return inner_.all_gather(t);
    }
    void barrier() override { inner_.barrier(); }
    void broadcast_bytes(std::string& d, int root) override { inner_.broadcast_bytes(d, root); }
    int reductions = 0, gathers = 0;

  private:
    Comm& inner_;
};

struct Replica {  // one rank's copy of a tiny two-tower model
    Tensor w_img, w_txt, w_a, w_b, logit_scale;
    std::vector<Tensor> params() const { return {w_img, w_txt, w_a, w_b, logit_scale}; }
};

Replica make_replica() {
    return {random_tensor({6, 5}, 1).requires_grad_(), random_tensor({7, 5}, 2).requires_grad_(),
            random_tensor({6, 4}, 3).requires_grad_(), random_tensor({6, 4}, 4).requires_grad_(),
            full({}, 2.0, DType::F64).requires_grad_()};
}

// The losses of A-CLIP on rows x (images) and y (texts) of this rank.
Tensor replica_loss(const Replica& m, const Tensor& x, const Tensor& y, Comm* comm) {
    Tensor clip = clip_loss(matmul(x, m.w_img), matmul(y, m.w_txt), m.logit_scale, comm);
    Tensor ssl = simclr_loss(matmul(x, m.w_a), matmul(x, m.w_b), 0.1, comm);
    return add(clip, ssl);
}

}  // namespace

TEST_SUITE("dist") {
    TEST_CASE(
        "broadcast_bytes: the root's bytes reach every rank, repeatedly; a world of one keeps its own") {
        std::vector<std::string> got(6);  // (root index, rank); checked here, not in the threads
        test::run_ranks(3, [&](int r, Comm& c) {
            for (int i = 0; i < 2; ++i) {
                const int root = 2 * i;
                std::string data =
                    r == root ? std::string("id-from-") + char('0' + root) + std::string(1, '\0') : "x";
                c.broadcast_bytes(data, root);
                got[i * 3 + r] = data;
            }
        });
        for (int i = 0; i < 2; ++i)
            for (int r = 0; r < 3; ++r)
                CHECK(got[i * 3 + r] == std::string("id-from-") + char('0' + 2 * i) + std::string(1, '\0'));
        LocalComm local;
        std::string mine = "mine";
        local.broadcast_bytes(mine, 0);
        CHECK(mine == "mine");
    }

    TEST_CASE("thread communicator: all_gather in rank order, all_reduce sums, repeated use") {
        const int world = 3;
        std::vector<std::vector<float>> gathered(world), reduced(world);
        test::run_ranks(world, [&](int r, Comm& c) {
            for (int round = 0; round < 3; ++round) {  // the barrier is reusable
                gathered[r] = c.all_gather(full({1, 2}, r + 10 * round)).to_vector<float>();
                Tensor t = full({2}, r + 1.0);
                c.all_reduce_sum(t);
                reduced[r] = t.to_vector<float>();
            }
        });
        for (int r = 0; r < world; ++r) {
            CHECK(gathered[r] == std::vector<float>{20, 20, 21, 21, 22, 22});
            CHECK(reduced[r] == std::vector<float>{6, 6});
        }
        CHECK_THROWS_WITH_AS(test::run_ranks(2,
                                             [](int r, Comm& c) {
                                                 c.all_gather(zeros({r + 1, 2}));
                                             }),
                             doctest::Contains("all_gather: rank"), Error);
    }

    TEST_CASE("rows_across_ranks: every rank receives every row in order, whatever the world and shares") {
        auto make = [](int64_t lo, int64_t hi) {  // row i is (i, -i)
            std::vector<float> v;
            for (int64_t i = lo; i < hi; ++i)
                v.insert(v.end(), {static_cast<float>(i), -static_cast<float>(i)});
            return from_vector(v, {hi - lo, 2});
        };
        for (int world : {1, 2, 3, 5})
            for (int64_t n : {0, 1, 7, 12}) {
                CAPTURE(world);
                CAPTURE(n);
                std::vector<std::vector<float>> got(static_cast<size_t>(world));
                std::vector<std::vector<int64_t>> asked(
                    static_cast<size_t>(world));  // the first row each made
                test::run_ranks(world, [&](int r, Comm& c) {
                    got[static_cast<size_t>(r)] =
                        rows_across_ranks(n, 3, 2, Device::CPU, c, [&](int64_t lo, int64_t hi) {
                            CHECK(lo % 3 == 0);  // whole chunks
                            asked[static_cast<size_t>(r)].push_back(lo);
                            return make(lo, hi);
                        }).to_vector<float>();
                });
                const std::vector<float> want = make(0, n).to_vector<float>();
                std::vector<int64_t> made;  // every chunk made once, by the rank that owns it
                for (int r = 0; r < world; ++r) {
                    CHECK(got[static_cast<size_t>(r)] == want);
                    for (int64_t lo : asked[static_cast<size_t>(r)]) {
                        CHECK(lo / 3 % world == r);
                        made.push_back(lo);
                    }
                }
                std::sort(made.begin(), made.end());
                std::vector<int64_t> chunks;
                for (int64_t lo = 0; lo < n; lo += 3) chunks.push_back(lo);
                CHECK(made == chunks);
            }
    }

    TEST_CASE("average_gradients: one reduction per dtype, every rank's mean, a missing gradient as zeros") {
        const std::vector<Shape> shapes = {{3}, {2, 2}, {}, {4, 1}, {7}};
        const int world = 2;
        std::vector<std::vector<Tensor>> params(world);
        std::vector<int> reductions(world);
        test::run_ranks(world, [&](int r, Comm& c) {
            std::vector<Tensor>& ps = params[r];
            for (size_t i = 0; i < shapes.size(); ++i) ps.push_back(zeros(shapes[i]).requires_grad_());
            ps.push_back(zeros({5}, DType::F64).requires_grad_());  // a second dtype: a second buffer
            for (size_t i = 0; i < ps.size(); ++i) {
                if (i == 3 && r == 1) continue;  // rank 1 has no gradient for parameter 3
                ps[i].impl().grad =
                    full(ps[i].shape(), 10.0 * (r + 1) + static_cast<double>(i), ps[i].dtype()).impl_ptr();
            }
            Counting counting(c);
            average_gradients(ps, counting);
            reductions[r] = counting.reductions;
        });
        for (int r = 0; r < world; ++r) {
            CAPTURE(r);
            CHECK(reductions[r] == 2);  // not one per parameter
            for (size_t i = 0; i < params[r].size(); ++i) {
                CAPTURE(i);
                const Tensor& g = params[r][i].grad();
                REQUIRE(g.defined());
                CHECK(g.shape() == params[r][i].shape());
                CHECK(g.dtype() == params[r][i].dtype());
                const double mean = i == 3 ? (10.0 + 3) / 2 : ((10.0 + i) + (20.0 + i)) / 2;
                for (double v : g.to_vector<double>()) CHECK(v == mean);
            }
        }
    }

    TEST_CASE("two ranks with half the batch each give the one-process loss and gradients") {
        const int64_t B = 8;
        Tensor x = random_tensor({B, 6}, 10), y = random_tensor({B, 7}, 11);
        Replica single = make_replica();
        Tensor full_loss = replica_loss(single, x, y, nullptr);
        full_loss.backward();

        const int world = 2;
        std::vector<double> rank_loss(world);
        std::vector<Replica> replicas = {make_replica(), make_replica()};
        test::run_ranks(world, [&](int r, Comm& c) {
            const Replica& m = replicas[r];
            Tensor loss = replica_loss(m, x.narrow(0, r * B / 2, B / 2), y.narrow(0, r * B / 2, B / 2), &c);
            loss.backward();
            average_gradients(m.params(), c);
            rank_loss[r] = loss.item();
        });
        // each rank's loss is a mean over its rows: their mean is the global mean (f64 throughout)
        CHECK((rank_loss[0] + rank_loss[1]) / 2 == doctest::Approx(full_loss.item()).epsilon(1e-12));
        CHECK(rank_loss[0] != doctest::Approx(rank_loss[1]));
        for (int r = 0; r < world; ++r)
            for (size_t i = 0; i < single.params().size(); ++i) {
                CAPTURE(r);
                CAPTURE(i);
                CHECK_CLOSE(replicas[r].params()[i].grad(), single.params()[i].grad(), 1e-12, 1e-10);
            }
    }
}

#include "engine/autograd/gradcheck.h"
#include "engine/dist/sync_batch_norm.h"

TEST_SUITE("dist") {
    TEST_CASE(
        "sync_batch_norm over ranks of 3, 4 and 1 rows is batch_norm over all 8, in one exchange each way") {
        const int64_t C = 4;
        const std::vector<int64_t> rows = {3, 4, 1}, first = {0, 3, 7};
        const int world = 3;
        // mean far from zero: E[x^2] - E[x]^2 would lose six digits, which the exact combination keeps
        Tensor x = random_tensor({8, C}, 30, 999, 1001),
               w = random_tensor({8, C}, 31);  // w: the loss weights
        Tensor gamma = random_tensor({C}, 32, 0.5, 1.5), beta = random_tensor({C}, 33);
        const double momentum = 0.1, eps = 1e-5;

        Tensor rx = x.clone().requires_grad_(), rg = gamma.clone().requires_grad_(),
               rb = beta.clone().requires_grad_();
        Tensor r_mean = zeros({C}, DType::F64), r_var = ones({C}, DType::F64);
        sum(mul(batch_norm(rx, rg, rb, r_mean, r_var, true, momentum, eps), w)).backward();
        Tensor ref_y = batch_norm(x, gamma, beta, Tensor(), Tensor(), true, momentum, eps);

        struct Rank {
            Tensor x, gamma, beta, mean, var, y;
            int gathers_forward = 0, reductions_forward = 0, gathers_backward = 0, reductions_backward = 0;
        };
        std::vector<Rank> ranks(world);
        test::run_ranks(world, [&](int r, Comm& c) {
            Rank& k = ranks[r];
            k.x = x.narrow(0, first[r], rows[r]).contiguous().requires_grad_();
            k.gamma = gamma.clone().requires_grad_();
            k.beta = beta.clone().requires_grad_();
            k.mean = zeros({C}, DType::F64);
            k.var = ones({C}, DType::F64);
            Counting counting(c);
            k.y = sync_batch_norm(k.x, k.gamma, k.beta, k.mean, k.var, momentum, eps, counting);
            k.gathers_forward = counting.gathers;
            k.reductions_forward = counting.reductions;
            sum(mul(k.y, w.narrow(0, first[r], rows[r]))).backward();
            k.gathers_backward = counting.gathers - k.gathers_forward;
            k.reductions_backward = counting.reductions - k.reductions_forward;
        });
        Tensor gamma_grad = zeros({C}, DType::F64), beta_grad = zeros({C}, DType::F64);
        for (int r = 0; r < world; ++r) {
            CAPTURE(r);
            const Rank& k = ranks[r];
            CHECK(k.gathers_forward == 1);  // count, mean and squares of every rank at once
            CHECK(k.reductions_forward == 0);
            CHECK(k.gathers_backward == 0);
            CHECK(k.reductions_backward == 1);  // both column sums at once
            // f64 throughout; sums in another order: agreement to ~1e-13 of values of order 1
            CHECK_CLOSE(k.y, ref_y.narrow(0, first[r], rows[r]), 1e-12, 1e-12);
            CHECK_CLOSE(k.x.grad(), rx.grad().narrow(0, first[r], rows[r]), 1e-12, 1e-12);
            CHECK_CLOSE(k.mean, r_mean, 1e-12, 1e-12);
            CHECK_CLOSE(k.var, r_var, 1e-12, 1e-12);
            gamma_grad.add_(k.gamma.grad());  // each rank's own rows: they add up to the whole batch's
            beta_grad.add_(k.beta.grad());
        }
        CHECK_CLOSE(gamma_grad, rg.grad(), 1e-12, 1e-12);
        CHECK_CLOSE(beta_grad, rb.grad(), 1e-12, 1e-12);
    }

    TEST_CASE("sync_batch_norm: f64 gradient check on a world of one; bad shapes are named") {
        LocalComm local;
        Tensor x = random_tensor({5, 3}, 40, -2, 2).requires_grad_();
        Tensor gamma = random_tensor({3}, 41, 0.5, 1.5).requires_grad_(),
               beta = random_tensor({3}, 42).requires_grad_();
        GradcheckResult r = gradcheck(
            [&](const std::vector<Tensor>& in) {
                return sync_batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), 0.1, 1e-5, local);
            },
            {x, gamma, beta});
        INFO(r.worst);
        CHECK(r.ok);
        GradcheckResult plain = gradcheck(  // without weight and bias
            [&](const std::vector<Tensor>& in) {
                return sync_batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5, local);
            },
            {x});
        INFO(plain.worst);
        CHECK(plain.ok);
        CHECK_THROWS_WITH_AS(sync_batch_norm(zeros({1, 3}, DType::F64), Tensor(), Tensor(), Tensor(),
                                             Tensor(), 0.1, 1e-5, local),
                             doctest::Contains("rank 0 of 1"), Error);
        CHECK_THROWS_WITH_AS(sync_batch_norm(zeros({4, 3}, DType::F64), zeros({2}, DType::F64), Tensor(),
                                             Tensor(), Tensor(), 0.1, 1e-5, local),
                             doctest::Contains("must have shape [3]"), Error);
    }
}

#include "model/aclip_compare.h"
#include "models/aclip.h"
#include "models/presets.h"

TEST_SUITE("dist") {
    TEST_CASE(
        "A-CLIP on two ranks with half the batch each: the gradients of one process with the whole batch") {
        AclipConfig cfg = model_preset("tiny");
        const int64_t B = 8, S = 32, C = 16;
        AclipBatch full;
        full.view1 = random_tensor({B, 3, S, S}, 20, -1, 1, DType::F32);
        full.view2 = random_tensor({B, 3, S, S}, 21, -1, 1, DType::F32);
        full.ema_view = random_tensor({B, 3, S, S}, 22, -1, 1, DType::F32);
        std::vector<int64_t> boxes, ids(B * C, 0);
        for (int64_t i = 0; i < B; ++i) {
            std::vector<int64_t> v = {4 + i, 2, 30, 36, 10, 8 + i, 28, 30, 0, 0, 44, 46};
            boxes.insert(boxes.end(), v.begin(), v.end());
            ids[i * C] = 98;
            for (int64_t j = 1; j < 4 + i % 5; ++j) ids[i * C + j] = 1 + (i * 13 + j * 7) % 90;
            ids[i * C + 4 + i % 5] = 99;
        }
        full.boxes = from_vector(boxes, {B, 3, 4});
        full.text = from_vector(ids, {B, C});
        auto slice = [&](int r) {
            AclipBatch b;
            b.view1 = full.view1.narrow(0, r * B / 2, B / 2).contiguous();
            b.view2 = full.view2.narrow(0, r * B / 2, B / 2).contiguous();
            b.ema_view = full.ema_view.narrow(0, r * B / 2, B / 2).contiguous();
            b.boxes = full.boxes.narrow(0, r * B / 2, B / 2).contiguous();
            b.text = full.text.narrow(0, r * B / 2, B / 2).contiguous();
            return b;
        };
        Generator g0(3);
        Aclip single(cfg, g0);
        single.forward(full, 0.9).loss.backward();
        std::vector<std::unique_ptr<Aclip>> ranks;
        for (int r = 0; r < 2; ++r) {
            Generator g(3);
            ranks.push_back(std::make_unique<Aclip>(cfg, g));
        }
        test::run_ranks(2, [&](int r, Comm& c) {
            Aclip& m = *ranks[r];
            m.set_comm(&c);
            m.forward(slice(r), 0.9).loss.backward();
            std::vector<Tensor> params;
            for (auto& p : m.named_parameters())
                if (p.tensor->requires_grad()) params.push_back(*p.tensor);
            average_gradients(params, c);
        });
        auto a = single.named_parameters(), b = ranks[0]->named_parameters();
        std::map<std::string, double> largest;  // each parameter's largest gradient element (one process)
        for (const NamedTensor& p : a)
            if (p.tensor->requires_grad()) largest[p.name] = test::max_abs(p.tensor->grad());
        for (size_t i = 0; i < a.size(); ++i) {
            if (!a[i].tensor->requires_grad()) continue;
            CAPTURE(a[i].name);
            // f32, different summation order across the split: compared as whole tensors, apart from
            // the elements whose exact gradient is zero (aclip_compare.h): f32 noise on both sides, within
            // 1e-4 of the layer's weight gradient (the rest of the model agrees to ~1e-5 of its size)
            auto part = test::zero_gradient_part(a[i].name, a[i].tensor->numel());
            auto [ours, ours_zero] = test::split_part(b[i].tensor->grad(), part);
            auto [ref, ref_zero] = test::split_part(a[i].tensor->grad(), part);
            if (ref.numel() > 0) CHECK(test::norm_rel_error(ours, ref) < 1e-4);
            if (ref_zero.numel() == 0) continue;
            const double noise = 1e-4 * largest.at(test::noise_scale_parameter(a[i].name));
            CHECK(test::max_abs(ours_zero) < noise);
            CHECK(test::max_abs(ref_zero) < noise);
        }
    }
}
