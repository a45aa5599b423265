#include "cgflow/io/Base64.h"

#include "cgflow/Error.h"

#include <cstdint>

namespace cgflow::io {

namespace {

const char* const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64Value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

} // namespace

std::string base64Encode(const std::string& bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                     static_cast<unsigned char>(bytes[i + 2]);
        out.push_back(base64Alphabet[(v >> 18) & 63]);
        out.push_back(base64Alphabet[(v >> 12) & 63]);
        out.push_back(base64Alphabet[(v >> 6) & 63]);
        out.push_back(base64Alphabet[v & 63]);
    }
    size_t rest = bytes.size() - i;
    if (rest > 0) {
        uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
        if (rest == 2)
            v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        out.push_back(base64Alphabet[(v >> 18) & 63]);
        out.push_back(base64Alphabet[(v >> 12) & 63]);
        out.push_back(rest == 2 ? base64Alphabet[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

std::string base64Decode(const std::string& text) {
    if (text.size() % 4 != 0)
        throw Error("invalid base64: length " + std::to_string(text.size()) + " is not a multiple of 4");
    size_t padding = 0;
    if (!text.empty() && text[text.size() - 1] == '=')
        padding = (text[text.size() - 2] == '=') ? 2 : 1;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = (i + 4 == text.size());
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            unsigned char c = static_cast<unsigned char>(text[i + j]);
            int digit;
            if (c == '=' && last && j >= 4 - padding)
                digit = 0;
            else if ((digit = base64Value(c)) < 0)
                throw Error("invalid base64: unexpected character " +
                            (c >= 32 && c < 127 ? "'" + std::string(1, static_cast<char>(c)) + "'"
                                                : "with code " + std::to_string(c)) +
                            " at position " + std::to_string(i + j));
            v = (v << 6) | static_cast<uint32_t>(digit);
        }
        out.push_back(static_cast<char>((v >> 16) & 0xff));
        if (!(last && padding == 2))
            out.push_back(static_cast<char>((v >> 8) & 0xff));
        if (!(last && padding >= 1))
            out.push_back(static_cast<char>(v & 0xff));
    }
    return out;
}

} // namespace cgflow::io
