// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) with the project's own
// writers: the safetensors and model-file encoders, Flow::getConfig(), PositionMap::toJson() and
// OpenMM's XmlSerializer over our proxies. Usage: fuzz_make_corpus <corpus directory>.
// Everything is small (hidden widths of 4), so the corpora stay at a few tens of KB.
#include "BoltzmannGeneratorIntegrator.h"
#include "CGMonteCarloIntegrator.h"
#include "PMFForce.h"
#include "cgflow/Error.h"
#include "cgflow/coords/PositionMap.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/io/SafeTensors.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "cgflow/io/models/FlowFile.h"
#include "cgflow/io/models/MLPEnsembleFile.h"
#include "cgflow/io/models/SlowFastModelFile.h"
#include "cgflow/models/SlowFastModel.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "cgflow/train/ModelTrainer.h"
#include "openmm/System.h"
#include "openmm/serialization/XmlSerializer.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace cgflow;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
    fs::create_directories(root / target);
    std::ofstream out(root / target / name, std::ios::binary);
    out << bytes;
    std::cout << (root / target / name).string() << " (" << bytes.size() << " bytes)\n";
}

std::string mlpEnsembleBytes(const std::vector<int>& widths, int members, unsigned seed) {
    std::vector<nn::MLP> mlps;
    for (int m = 0; m < members; m++) {
        nn::MLP mlp(widths, nn::Activation::Sigmoid);
        mlp.initializeParameters(seed * 100 + m);
        mlps.push_back(mlp);
    }
    return io::encodeMLPEnsemble(nn::MLPEnsemble(mlps), {{"note", "fuzz seed"}});
}

const json smallBuilder = {{"dimension", 3}, {"coupling", "affine"}, {"num_layers", 2},
                           {"masks", {{true, false, false}}}, {"hidden", 4}, {"num_threads", 1}};
const json circularBuilder = {{"dimension", 4}, {"circular", {1, 3}}, {"num_layers", 4}, {"hidden", 4},
                              {"num_bins", 4}, {"base", "truncated_normal"}, {"context_dimension", 1},
                              {"context_circular", {0}}, {"num_threads", 1}};
const json toyInternal = {{"type", "internal"},
                          {"z_matrix", {{0, -1, -1, -1, false}, {1, 0, -1, -1, false}, {2, 1, 0, -1, false},
                                        {3, 2, 1, 0, true}, {4, 3, 2, 1, true}}},
                          {"jacobian", "full"},
                          {"normalization", nullptr}};

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: fuzz_make_corpus <corpus directory>\n";
        return 2;
    }
    root = argv[1];
    try {
        // ---- safetensors ----
        io::SafeTensors st;
        st.metadata["purpose"] = "fuzz seed";
        const double values[6] = {1, -2, 3.5, 0, 1e-3, 7};
        st.tensors["a"] = io::Tensor::fromDoubles({2, 3}, values);
        st.tensors["scalar"] = io::Tensor::fromDoubles({}, values + 2);
        io::Tensor ints;
        ints.dtype = io::DType::I64;
        ints.shape = {2};
        ints.bytes = std::string("\x01\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff", 16);
        st.tensors["ints"] = ints;
        io::Tensor f32;
        f32.dtype = io::DType::F32;
        f32.shape = {1, 2};
        const float floats[2] = {0.5f, -1.25f};
        f32.bytes.assign(reinterpret_cast<const char*>(floats), sizeof(floats));
        st.tensors["f32"] = f32;
        io::Tensor bytes;
        bytes.dtype = io::DType::U8;
        bytes.shape = {3};
        bytes.bytes = "xyz";
        st.tensors["u8"] = bytes;
        io::Tensor i32;
        i32.dtype = io::DType::I32;
        i32.shape = {0, 4};
        st.tensors["empty_i32"] = i32;
        write("safetensors", "mixed_dtypes.safetensors", st.serialize());
        write("safetensors", "empty.safetensors", io::SafeTensors().serialize());
        write("safetensors", "mlp_ensemble.safetensors", mlpEnsembleBytes({2, 3, 1}, 1, 1));

        // ---- model files, one per kind ----
        write("model_file", "mlp_ensemble.safetensors", mlpEnsembleBytes({2, 4, 3, 1}, 2, 2));
        write("model_file", "mlp_ensemble_1layer.safetensors", mlpEnsembleBytes({3, 1}, 1, 3));
        auto flow = flows::Flow::fromConfig(smallBuilder);
        write("model_file", "flow.safetensors", io::encodeFlow(*flow, nullptr, {{"note", "fuzz seed"}}));
        auto circular = flows::Flow::fromConfig(circularBuilder);
        write("model_file", "flow_circular.safetensors", io::encodeFlow(*circular));
        train::ModelTrainer trainer(*flow, train::ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}, {"guard", true}}));
        write("model_file", "flow_with_training.safetensors", io::encodeFlow(*flow, &trainer));
        write("model_file", "boltzmann_generator_cartesian.safetensors",
              io::encodeBoltzmannGenerator(*flow, coords::PositionMap::allCartesian(1)));
        const coords::PositionMap internal = coords::PositionMap::fromJson(toyInternal);
        json internalFlow = {{"dimension", internal.getDimension()}, {"num_layers", 2}, {"hidden", 4},
                             {"num_bins", 4}, {"num_threads", 1}};
        json circularDims = json::array();
        const std::vector<bool> mapCircular = internal.getCircular();
        for (size_t d = 0; d < mapCircular.size(); d++)
            if (mapCircular[d])
                circularDims.push_back(d);
        internalFlow["circular"] = circularDims;
        auto bgFlow = flows::Flow::fromConfig(internalFlow);
        write("model_file", "boltzmann_generator_internal.safetensors",
              io::encodeBoltzmannGenerator(*bgFlow, internal));
        const json slowFast = {
            {"slow", {{"dimension", 2}, {"num_layers", 2}, {"hidden", 4}, {"base", "truncated_normal"}, {"num_threads", 1}}},
            {"fast", {{"hidden", 4}, {"num_blocks", 1}, {"activation", "relu"}}},
            {"map", {{"type", "right_stochastic_linear"}, {"num_atoms", 4}, {"components_per_atom", 1},
                     {"initial_logit_noise", 0.5}}},
            {"seed", 3}};
        models::SlowFastModel sfm(slowFast);
        write("model_file", "slow_fast_model.safetensors", io::encodeSlowFastModel(sfm));

        // ---- flow configs: builder and explicit forms ----
        write("flow_config", "builder_affine.json", smallBuilder.dump());
        write("flow_config", "builder_circular.json", circularBuilder.dump());
        write("flow_config", "builder_elementwise.json",
              json({{"dimension", 1}, {"coupling", "elementwise"}, {"num_layers", 2}, {"hidden", 4}, {"num_bins", 4},
                    {"num_threads", 1}})
                  .dump());
        write("flow_config", "explicit_affine.json", flow->getConfig().dump());
        write("flow_config", "explicit_circular.json", circular->getConfig().dump());
        write("flow_config", "explicit_slow_fast_slow.json", sfm.getSlowFlow().getConfig().dump());

        // ---- PositionMap JSON ----
        write("position_map", "cartesian.json", coords::PositionMap::cartesian(3, {{0, 0}, {2, 1}, {1, 2}}).toJson().dump());
        write("position_map", "all_cartesian.json", coords::PositionMap::allCartesian(2).toJson().dump());
        write("position_map", "internal_toy.json", internal.toJson().dump());
        json normalized = toyInternal;
        normalized["jacobian"] = "frame";
        std::vector<double> shift(internal.getDimension(), 0.25), scale(internal.getDimension(), 2.0);
        for (size_t d = 0; d < mapCircular.size(); d++)
            if (mapCircular[d])
                scale[d] = 1.0; // circular columns stay on [-pi, pi)
        normalized["normalization"] = {{"shift", shift}, {"scale", scale}};
        try {
            write("position_map", "internal_normalized.json", coords::PositionMap::fromJson(normalized).toJson().dump());
        } catch (const Error& e) {
            std::cerr << "skipped internal_normalized.json: " << e.what() << "\n";
        }
        json conditional = toyInternal;
        const int circularColumn = internal.getColumnOfDimension(static_cast<int>(circularDims.back()));
        conditional["condition_columns"] = {{circularColumn, 0}};
        write("position_map", "internal_conditional.json", coords::PositionMap::fromJson(conditional).toJson().dump());
        write("position_map", "alanine_dipeptide.json",
              coords::PositionMap::internal(coords::InternalCoordinates(coords::ZMatrix::alanineDipeptide())).toJson().dump());

        // ---- XML: a System with a PMFForce, and both integrators ----
        OpenMM::System system;
        for (int i = 0; i < 4; i++)
            system.addParticle(12.0);
        auto* force = new CGFlowPlugin::PMFForce();
        force->setModelBytes(mlpEnsembleBytes({4, 3, 1}, 2, 4));
        force->addDistance(0, 1);
        force->addAngle(0, 1, 2);
        force->addDihedral(0, 1, 2, 3);
        force->addCoordinate(3, 2, 2.0);
        force->addParticleGroup({0, 1});
        system.addForce(force);
        std::ostringstream systemXml;
        OpenMM::XmlSerializer::serialize<OpenMM::System>(&system, "System", systemXml);
        write("xml_proxies", "system_pmfforce.xml", systemXml.str());
        OpenMM::System bare;
        bare.addParticle(1.0);
        bare.addForce(new CGFlowPlugin::PMFForce());
        std::ostringstream bareXml;
        OpenMM::XmlSerializer::serialize<OpenMM::System>(&bare, "System", bareXml);
        write("xml_proxies", "system_pmfforce_no_model.xml", bareXml.str());
        CGFlowPlugin::BoltzmannGeneratorIntegrator bg(300.0);
        bg.setModelBytes(io::encodeBoltzmannGenerator(*flow, coords::PositionMap::allCartesian(1)));
        std::ostringstream bgXml;
        OpenMM::XmlSerializer::serialize<OpenMM::Integrator>(&bg, "Integrator", bgXml);
        write("xml_proxies", "boltzmann_generator_integrator.xml", bgXml.str());
        CGFlowPlugin::CGMonteCarloIntegrator mc(300.0, 0.1);
        std::ostringstream mcXml;
        OpenMM::XmlSerializer::serialize<OpenMM::Integrator>(&mc, "Integrator", mcXml);
        write("xml_proxies", "cg_monte_carlo_integrator.xml", mcXml.str());
    } catch (const std::exception& e) {
        std::cerr << "fuzz_make_corpus: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
