// libFuzzer target: the XML serialization proxies of PMFForce, BoltzmannGeneratorIntegrator and
// CGMonteCarloIntegrator, reached through OpenMM's XmlSerializer::deserialize<System> (a System
// whose <Forces> hold a PMFForce) and deserialize<Integrator> on arbitrary text.
// Documented refusal: OpenMM::OpenMMException (the proxies translate cgflow::Error into it).
//
// XmlSerializer::deserialize<T> reinterpret_casts whatever the root's type attribute names to T*,
// and the System proxy casts every child of <Forces> to Force*: a document whose types disagree with
// T is a type confusion inside OpenMM, not in this project. So the harness only passes on documents
// whose root type it has checked itself, and (for a System) that name no System or Integrator below
// the root; '&' (character references could spell such names) is skipped too. It also passes only
// well-formed documents (see wellFormed): OpenMM's XML reader is not robust against malformed text.
#include "FuzzCommon.h"
#include "BoltzmannGeneratorIntegrator.h"
#include "CGMonteCarloIntegrator.h"
#include "PMFForce.h"
#include "cgflow/Error.h"
#include "openmm/Integrator.h"
#include "openmm/OpenMMException.h"
#include "openmm/System.h"
#include "openmm/serialization/XmlSerializer.h"

#include <cstddef>
#include <cstdint>
#include <cctype>
#include <sstream>
#include <string>
#include <vector>

using namespace OpenMM;

namespace {

bool isNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool isNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A strict subset of XML that OpenMM's parser (irrXML, inside libOpenMM) handles safely: an
// optional <?xml ...?> declaration, then one element tree of <name attr="value" ...>, </name> and
// <name .../> tags with balanced names, attribute values without '<', '>' or '&', text without
// '<', '>' or '&', and printable ASCII or whitespace only. irrXML reads past the end of its buffer
// on some malformed documents (e.g. a truncated closing tag); that is an OpenMM bug outside this
// project, so such documents are skipped. On success, rootType is the root's type attribute (it
// must have exactly one) and rootEnd the offset just after the root's start tag.
bool wellFormed(const std::string& text, std::string& rootType, size_t& rootEnd) {
    for (char c : text)
        if (!(isSpace(c) || (c >= 0x20 && c < 0x7f)) || c == '&')
            return false;
    size_t i = 0;
    const size_t n = text.size();
    auto skipSpace = [&] { while (i < n && isSpace(text[i])) i++; };
    auto readName = [&](std::string& name) {
        if (i >= n || !isNameStart(text[i]))
            return false;
        const size_t begin = i;
        while (i < n && isNameChar(text[i]))
            i++;
        name = text.substr(begin, i - begin);
        return true;
    };
    skipSpace();
    if (text.compare(i, 5, "<?xml") == 0) {
        const size_t close = text.find("?>", i);
        if (close == std::string::npos || text.find_first_of("<>", i + 1) < close)
            return false;
        i = close + 2;
    }
    std::vector<std::string> open;
    bool seenRoot = false;
    while (true) {
        // Text up to the next tag.
        while (i < n && text[i] != '<') {
            if (text[i] == '>' || (open.empty() && !isSpace(text[i])))
                return false;
            i++;
        }
        if (i >= n)
            return seenRoot && open.empty();
        i++; // '<'
        if (i < n && text[i] == '/') {
            i++;
            std::string name;
            if (!readName(name) || open.empty() || open.back() != name)
                return false;
            skipSpace();
            if (i >= n || text[i] != '>')
                return false;
            i++;
            open.pop_back();
            continue;
        }
        if (seenRoot && open.empty())
            return false; // a second root
        std::string name;
        if (!readName(name))
            return false;
        int typeCount = 0;
        std::string type;
        while (true) {
            const size_t before = i;
            skipSpace();
            if (i < n && (text[i] == '>' || (text[i] == '/' && i + 1 < n && text[i + 1] == '>'))) {
                const bool selfClosing = text[i] == '/';
                i += selfClosing ? 2 : 1;
                if (!seenRoot) {
                    if (typeCount != 1)
                        return false;
                    rootType = type;
                    rootEnd = i;
                    seenRoot = true;
                }
                if (!selfClosing)
                    open.push_back(name);
                break;
            }
            std::string attribute;
            if (i == before || !readName(attribute))
                return false;
            skipSpace();
            if (i >= n || text[i] != '=')
                return false;
            i++;
            skipSpace();
            if (i >= n || text[i] != '"')
                return false;
            const size_t valueBegin = ++i;
            while (i < n && text[i] != '"' && text[i] != '<' && text[i] != '>')
                i++;
            if (i >= n || text[i] != '"')
                return false;
            if (attribute == "type") {
                type = text.substr(valueBegin, i - valueBegin);
                typeCount++;
            }
            i++;
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::string type;
    size_t rootEnd = 0;
    if (!wellFormed(text, type, rootEnd))
        return 0;
    const std::string body = text.substr(rootEnd);
    std::istringstream stream(text);
    try {
        if (type == "System") {
            if (body.find("System") != std::string::npos || body.find("Integrator") != std::string::npos)
                return 0;
            std::unique_ptr<System> system(XmlSerializer::deserialize<System>(stream));
            // Whatever was read serializes again.
            std::ostringstream out;
            XmlSerializer::serialize<System>(system.get(), "System", out);
        } else if (type == "BoltzmannGeneratorIntegrator" || type == "CGMonteCarloIntegrator") {
            if (body.find("type") != std::string::npos)
                return 0;
            std::unique_ptr<Integrator> integrator;
            if (type == "BoltzmannGeneratorIntegrator")
                integrator.reset(XmlSerializer::deserialize<CGFlowPlugin::BoltzmannGeneratorIntegrator>(stream));
            else
                integrator.reset(XmlSerializer::deserialize<CGFlowPlugin::CGMonteCarloIntegrator>(stream));
            std::ostringstream out;
            XmlSerializer::serialize<Integrator>(integrator.get(), "Integrator", out);
        }
    } catch (const OpenMMException&) {
        // refused
    }
    return 0;
}
