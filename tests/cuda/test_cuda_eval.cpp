// test_cuda_eval.cpp: evaluation on the GPU (the Embedder of train/evaluate.h) embeds images and texts as
// on the CPU, in f32 and under bf16 autocast, for the online and the EMA towers. It needs the data
// libraries (JPEG decoding, the tokenizer), so it is built with them: tools/test.sh on a GPU machine runs
// it; gpu_check's engine-only build does not.
#include <unistd.h>

#include <filesystem>

#include "data/bpe_train.h"
#include "data/image.h"
#include "models/presets.h"
#include "test_util.h"
#include "tests/gpu_skip.h"
#include "train/evaluate.h"

using namespace aclip;
using aclip::test::norm_rel_error;

TEST_SUITE("cuda") {
    TEST_CASE("GPU: evaluation embeds images and texts as on the CPU, in f32 and under bf16") {
        if (!test::gpu_available("evaluation on the GPU")) return;
        const std::string dir =
            std::filesystem::temp_directory_path().string() + "/aclip_cuda_eval_" + std::to_string(getpid());
        std::filesystem::create_directories(dir);
        write_merges(dir + "/bpe.txt", learn_bpe({"a photo of a cat", "a photo of a dog"}, 40));
        ClipTokenizer tok(dir + "/bpe.txt", 1000);
        AclipConfig c = model_preset("tiny");
        c.clip.text.vocab = tok.vocab_size();
        Generator g1(5), g2(5);
        Aclip cpu(c, g1), gpu(c, g2);
        gpu.to(Device::CUDA);
        std::vector<std::string> images;
        for (int i = 0; i < 5; ++i) {
            std::vector<uint8_t> px(36 * 32 * 3);
            for (size_t p = 0; p < px.size(); ++p) px[p] = static_cast<uint8_t>((p * (i + 2)) % 251);
            images.push_back(encode_jpeg(Image{36, 32, px}));
        }
        const std::vector<std::string> texts = {"a photo of a cat", "a dog", "a red fox"};
        for (bool mixed : {false, true})
            for (bool ema : {false, true}) {
                CAPTURE(mixed);
                CAPTURE(ema);
                EvalSettings s;
                s.context = 16;
                s.transform.size = 32;
                s.batch_size = 2;
                s.mixed_precision = mixed;
                Embedder on_cpu(cpu, ema, tok, s), on_gpu(gpu, ema, tok, s);
                const Tensor ig = on_gpu.images(images), tg = on_gpu.texts(texts);
                CHECK(ig.device() == Device::CUDA);
                // f32: sums in other orders; bf16: each side rounds its own intermediates
                const double tol = mixed ? 2e-2 : 1e-4;
                CHECK(norm_rel_error(ig, on_cpu.images(images)) <= tol);
                CHECK(norm_rel_error(tg, on_cpu.texts(texts)) <= tol);
            }
    }
}
