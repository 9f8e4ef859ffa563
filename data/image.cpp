// image.cpp: see image.h. libjpeg reports fatal errors through a longjmp out of the decoder, which is
// the documented way to use it from C++ without unwinding through C frames.
#include "data/image.h"

#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>

#include "engine/core/error.h"

#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STBI_ONLY_PNM
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace aclip {

namespace {

bool is_jpeg(const std::string& b) {
    return b.size() >= 3 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8 &&
           static_cast<uint8_t>(b[2]) == 0xFF;
}

struct JpegError {
    jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    bool truncated = false;
};

void on_jpeg_error(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegError*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

void on_jpeg_message(j_common_ptr cinfo, int level) {
    if (level < 0) {  // a warning: the only one that matters here is a premature end of data
        auto* err = reinterpret_cast<JpegError*>(cinfo->err);
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->truncated = true;
    }
}

void check_pixels(int64_t w, int64_t h, int64_t max_pixels) {
    AC_CHECK(w > 0 && h > 0, "image: empty (", w, "x", h, ")");
    AC_CHECK(w * h <= max_pixels, "image: ", w, "x", h, " = ", w * h, " pixels exceeds the limit of ",
             max_pixels, " (a decompression bomb?)");
}

}  // namespace

namespace {

// Whether raw output suits this file: three components in YCbCr, both chroma components subsampled alike
// by 1 or 2 per axis and luma not (jpeg_read_header has run).
bool planes_supported(const jpeg_decompress_struct& c) {
    if (c.num_components != 3 || c.jpeg_color_space != JCS_YCbCr) return false;
    const jpeg_component_info* comp = c.comp_info;
    if (comp[0].h_samp_factor != c.max_h_samp_factor || comp[0].v_samp_factor != c.max_v_samp_factor)
        return false;
    if (comp[1].h_samp_factor != comp[2].h_samp_factor || comp[1].v_samp_factor != comp[2].v_samp_factor)
        return false;  // Cb and Cr sampled alike, as every common layout has them
    const int hx = c.max_h_samp_factor, hy = c.max_v_samp_factor, cx = comp[1].h_samp_factor,
              cy = comp[1].v_samp_factor;
    return hx % cx == 0 && hy % cy == 0 && hx / cx <= 2 && hy / cy <= 2;
}

// A row of CMYK as libjpeg returns it to RGB, as PIL does: it reads 4-channel JPEGs with Adobe's inverted
// polarity always (rawmode "CMYK;I"), then converts with cmyk2rgb: R = (255 - K) - C (255 - K) / 255,
// rounded as PIL's MULDIV255.
void cmyk_to_rgb(const uint8_t* four, uint8_t* rgb, int64_t width) {
    auto muldiv255 = [](int a, int b) {
        const int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    };
    for (int64_t x = 0; x < width; ++x, four += 4, rgb += 3) {
        const int not_k = four[3];  // 255 - K, K being 255 - the stored value
        for (int c = 0; c < 3; ++c)
            rgb[c] = static_cast<uint8_t>(std::clamp(not_k - muldiv255(255 - four[c], not_k), 0, 255));
    }
}

// Reads a JPEG's header and, when an output is given, its pixels: as RGB (shrunk 1/scale_denom in the
// DCT) into rgb, or as the stored Y, Cb and Cr planes into planes (left empty when the file's layout is
// not one planes_supported accepts). One function, because libjpeg's error exit must longjmp back into
// the frame that owns the decoder.
ImageInfo read_jpeg(const std::string& bytes, int scale_denom, int64_t max_pixels, Image* rgb,
                    JpegPlanes* planes) {
    jpeg_decompress_struct cinfo;
    JpegError err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_jpeg_error;
    err.mgr.emit_message = on_jpeg_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        AC_FAIL("jpeg: ", err.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    jpeg_read_header(&cinfo, TRUE);
    ImageInfo info{cinfo.image_width, cinfo.image_height, true};
    if ((!rgb && !planes) || info.width * info.height > max_pixels) {  // header only, or a bomb refused
        jpeg_destroy_decompress(&cinfo);
        check_pixels(info.width, info.height, max_pixels);
        return info;
    }
    if (planes && !planes_supported(cinfo)) {
        jpeg_destroy_decompress(&cinfo);
        *planes = JpegPlanes{};
        return info;
    }
    if (planes) {
        cinfo.raw_data_out = TRUE;
        jpeg_start_decompress(&cinfo);
        // Each call returns one iMCU row: v_samp_factor * 8 rows of each component, padded to whole
        // blocks (libjpeg.txt, "raw data").
        const int64_t imcu_rows =
            (info.height + cinfo.max_v_samp_factor * DCTSIZE - 1) / (cinfo.max_v_samp_factor * DCTSIZE);
        planes->width = info.width;
        planes->height = info.height;
        std::vector<JSAMPROW> row_pointers[3];
        for (int c = 0; c < 3; ++c) {
            const jpeg_component_info& comp = cinfo.comp_info[c];
            Plane& p = planes->planes[static_cast<size_t>(c)];
            p.width = comp.downsampled_width;
            p.height = comp.downsampled_height;
            p.stride = comp.width_in_blocks * DCTSIZE;
            planes->step_x[static_cast<size_t>(c)] = cinfo.max_h_samp_factor / comp.h_samp_factor;
            planes->step_y[static_cast<size_t>(c)] = cinfo.max_v_samp_factor / comp.v_samp_factor;
            p.data.resize(static_cast<size_t>(p.stride * imcu_rows * comp.v_samp_factor * DCTSIZE));
            for (int64_t y = 0; y < imcu_rows * comp.v_samp_factor * DCTSIZE; ++y)
                row_pointers[c].push_back(p.data.data() + y * p.stride);
        }
        for (int64_t r = 0; r < imcu_rows && !err.truncated; ++r) {
            JSAMPARRAY rows[3];
            for (int c = 0; c < 3; ++c)
                rows[c] = row_pointers[c].data() + r * cinfo.comp_info[c].v_samp_factor * DCTSIZE;
            jpeg_read_raw_data(&cinfo, rows, static_cast<JDIMENSION>(cinfo.max_v_samp_factor * DCTSIZE));
        }
    } else {
        // Grayscale and YCbCr come out as RGB; CMYK and YCCK as CMYK, converted below as PIL does.
        const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
        cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
        cinfo.scale_num = 1;
        cinfo.scale_denom = static_cast<unsigned>(scale_denom);
        jpeg_start_decompress(&cinfo);
        if (cinfo.output_components != (cmyk ? 4 : 3)) {
            jpeg_destroy_decompress(&cinfo);
            AC_FAIL("jpeg: ", cinfo.output_components, " output components are not supported");
        }
        rgb->width = cinfo.output_width;
        rgb->height = cinfo.output_height;
        rgb->rgb.resize(static_cast<size_t>(rgb->width * rgb->height * 3));
        std::vector<uint8_t> four(cmyk ? static_cast<size_t>(rgb->width * 4) : 0);
        while (cinfo.output_scanline < cinfo.output_height && !err.truncated) {
            uint8_t* out = rgb->rgb.data() + static_cast<size_t>(cinfo.output_scanline) * rgb->width * 3;
            JSAMPROW row = cmyk ? four.data() : out;
            if (jpeg_read_scanlines(&cinfo, &row, 1) == 1 && cmyk) cmyk_to_rgb(four.data(), out, rgb->width);
        }
    }
    if (err.truncated) {
        jpeg_destroy_decompress(&cinfo);
        AC_FAIL("jpeg: truncated (the data ends before the image does)");
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return info;
}

}  // namespace

ImageInfo probe_image(const std::string& bytes, int64_t max_pixels) {
    if (is_jpeg(bytes)) return read_jpeg(bytes, 1, max_pixels, nullptr, nullptr);
    int w = 0, h = 0, c = 0;
    AC_CHECK(stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                   static_cast<int>(bytes.size()), &w, &h, &c),
             "image: unknown or corrupt format (", bytes.size(), " bytes; ", stbi_failure_reason(), ")");
    check_pixels(w, h, max_pixels);
    return {w, h, false};
}

Image decode_image(const std::string& bytes, int scale_denom, int64_t max_pixels) {
    AC_CHECK(scale_denom == 1 || scale_denom == 2 || scale_denom == 4 || scale_denom == 8,
             "decode_image: scale 1/", scale_denom, " is not one of 1/1, 1/2, 1/4, 1/8");
    Image img;
    if (is_jpeg(bytes)) {
        read_jpeg(bytes, scale_denom, max_pixels, &img, nullptr);
        return img;
    }
    probe_image(bytes, max_pixels);  // refuses bombs before any pixel is allocated
    int w = 0, h = 0, c = 0;
    stbi_uc* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                          static_cast<int>(bytes.size()), &w, &h, &c, 3);
    AC_CHECK(data != nullptr, "image: cannot decode (", stbi_failure_reason(), ")");
    img.width = w;
    img.height = h;
    img.rgb.assign(data, data + static_cast<size_t>(w) * h * 3);
    stbi_image_free(data);
    return img;
}

bool decode_jpeg_planes(const std::string& bytes, int64_t max_pixels, JpegPlanes& out) {
    if (!is_jpeg(bytes)) return false;
    read_jpeg(bytes, 1, max_pixels, nullptr, &out);
    return out.width > 0;
}

std::string encode_jpeg(const Image& img, int quality, bool subsample_chroma) {
    AC_CHECK(
        img.width > 0 && img.height > 0 && img.rgb.size() == static_cast<size_t>(img.width * img.height * 3),
        "encode_jpeg: bad image ", img.width, "x", img.height);
    jpeg_compress_struct cinfo;
    JpegError err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_jpeg_error;
    unsigned char* out = nullptr;
    unsigned long out_size = 0;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        std::free(out);
        AC_FAIL("encode_jpeg: ", err.message);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &out, &out_size);
    cinfo.image_width = static_cast<JDIMENSION>(img.width);
    cinfo.image_height = static_cast<JDIMENSION>(img.height);
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (!subsample_chroma) cinfo.comp_info[0].h_samp_factor = cinfo.comp_info[0].v_samp_factor = 1;  // 4:4:4
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row =
            const_cast<uint8_t*>(img.rgb.data()) + static_cast<size_t>(cinfo.next_scanline) * img.width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::string bytes(reinterpret_cast<char*>(out), out_size);
    std::free(out);
    return bytes;
}

std::string encode_png(const Image& img) {
    int len = 0;
    unsigned char* png =
        stbi_write_png_to_mem(img.rgb.data(), static_cast<int>(img.width * 3), static_cast<int>(img.width),
                              static_cast<int>(img.height), 3, &len);
    AC_CHECK(png != nullptr, "encode_png: failed for ", img.width, "x", img.height);
    std::string bytes(reinterpret_cast<char*>(png), static_cast<size_t>(len));
    STBIW_FREE(png);
    return bytes;
}

}  // namespace aclip
