#include "CommonBoltzmannGeneratorKernels.h"

#include <cmath>
#include <limits>

#include "CommonCGFlowKernelSources.h"
#include "cgflow/Error.h"
#include "cgflow/flows/AffineCoupling.h"
#include "cgflow/flows/BaseDensity.h"
#include "cgflow/flows/Permutation.h"
#include "cgflow/flows/RQSpline.h"
#include "cgflow/flows/SplineCoupling.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/common/IntegrationUtilities.h"
#include "openmm/internal/ContextImpl.h"
#include <algorithm>
#include <map>

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

enum BufferId { FeaturesBuffer = 0, StreamBuffer = 1, ActivatedBuffer = 2, InnerBuffer = 3, RawBuffer = 4 };

/** Adds count placeholder arguments, so that every launch can set them with setArg(). */
void placeholders(ComputeKernel& kernel, int count) {
    for (int i = 0; i < count; i++)
        kernel->addArg();
}

} // namespace

template <class T>
void CommonIntegrateBoltzmannGeneratorStepKernel::uploadReals(ComputeArray& array, const std::vector<double>& values,
                                                              const std::string& name) {
    std::vector<T> converted(values.begin(), values.end());
    if (converted.empty())
        converted.push_back(0);
    if (!array.isInitialized() || array.getSize() != converted.size()) {
        if (array.isInitialized())
            array.resize(converted.size());
        else
            array.initialize<T>(cc, converted.size(), name);
    }
    array.upload(converted);
}

ComputeArray& CommonIntegrateBoltzmannGeneratorStepKernel::buffer(int id) {
    switch (id) {
    case FeaturesBuffer:
        return features;
    case StreamBuffer:
        return stream;
    case ActivatedBuffer:
        return activated;
    case InnerBuffer:
        return inner;
    default:
        return raw;
    }
}

void CommonIntegrateBoltzmannGeneratorStepKernel::initialize(const System& system,
                                                           const BoltzmannGeneratorIntegrator& integrator) {
    // As OpenMM's own integrator kernels do: the Context's force kernels are set up here.
    cc.initializeContexts();
    ContextSelector selector(cc);
    // The integrator decoded the model once; the device copies of its parameters are made below.
    model = integrator.getModel();
    const cgflow::flows::Flow& flow = *model->flow;
    dim = flow.getDimension();
    numAtoms = system.getNumParticles();
    internal = model->positions->getType() == cgflow::coords::PositionMap::Type::Internal;
    const bool useDouble = cc.getUseDoublePrecision();
    const int realSize = useDouble ? sizeof(double) : sizeof(float);
    int maxBins = 1;

    // Walk the layers: index tables per layer, and the sequence of launches of the sampling pass.
    layers.resize(flow.getNumLayers());
    for (int l = 0; l < flow.getNumLayers(); l++) {
        const cgflow::flows::Bijection& layer = flow.getLayer(l);
        LayerData& info = layers[l];
        const std::string prefix = "bgLayer" + std::to_string(l);
        if (auto* permutation = dynamic_cast<const cgflow::flows::Permutation*>(&layer)) {
            info.order.initialize<int>(cc, dim, prefix + "Order");
            info.order.upload(permutation->getPermutation());
            Step step{Step::Permute};
            step.layer = l;
            steps.push_back(step);
            continue;
        }
        if (auto* shiftLayer = dynamic_cast<const cgflow::flows::CircularShift*>(&layer)) {
            if (useDouble)
                uploadReals<double>(info.shifts, shiftLayer->getShifts(), prefix + "Shifts");
            else
                uploadReals<float>(info.shifts, shiftLayer->getShifts(), prefix + "Shifts");
            Step step{Step::Shift};
            step.layer = l;
            steps.push_back(step);
            continue;
        }
        auto* coupling = dynamic_cast<const cgflow::flows::CouplingLayer*>(&layer);
        auto* spline = dynamic_cast<const cgflow::flows::SplineCoupling*>(&layer);
        auto* affine = dynamic_cast<const cgflow::flows::AffineCoupling*>(&layer);
        if (coupling == nullptr || (spline == nullptr && affine == nullptr))
            throw OpenMMException("BoltzmannGeneratorIntegrator: layer " + std::to_string(l) + " ('" +
                                  layer.getTypeName() + "') has no GPU kernel; the OpenCL and CUDA platforms support "
                                  "spline_coupling, affine_coupling, permutation and circular_shift (use the "
                                  "Reference or CPU platform for this model)");
        const std::vector<bool>& transformed = coupling->getTransformed();
        const std::vector<bool>& circular = coupling->getInputCircular();
        std::vector<int> passDims, passCircular, transformedDims;
        for (int d = 0; d < dim; d++)
            if (!transformed[d]) {
                passDims.push_back(d);
                passCircular.push_back(circular[d] ? 1 : 0);
                info.featureWidth += circular[d] ? 2 : 1;
            }
        for (int pass = 0; pass < 2; pass++)
            for (int d = 0; d < dim; d++)
                if (transformed[d] && circular[d] == (pass == 1)) {
                    transformedDims.push_back(d);
                    (pass == 0 ? info.numReal : info.numCircular)++;
                }
        info.numPass = static_cast<int>(passDims.size());
        info.contextFeatures = coupling->getContextFeatureSize();
        info.featureWidth += info.contextFeatures;
        info.rawSize = coupling->getRawSize();
        info.conditioner = coupling->hasConditioner();
        info.passDims.initialize<int>(cc, std::max<size_t>(1, passDims.size()), prefix + "PassDims");
        info.passCircular.initialize<int>(cc, std::max<size_t>(1, passDims.size()), prefix + "PassCircular");
        if (!passDims.empty()) {
            info.passDims.upload(passDims);
            info.passCircular.upload(passCircular);
        }
        info.transformedDims.initialize<int>(cc, transformedDims.size(), prefix + "TransformedDims");
        info.transformedDims.upload(transformedDims);
        if (spline != nullptr) {
            const cgflow::flows::SplineOptions& options = spline->getSplineOptions();
            info.numBins = options.numBins;
            info.bound = options.bound;
            info.minWidth = options.minBinWidth;
            info.minHeight = options.minBinHeight;
            info.minDerivative = options.minDerivative;
            maxBins = std::max(maxBins, options.numBins);
        }
        std::vector<double> layerParameters(coupling->getNumParameters());
        coupling->getParameters(layerParameters.data());
        if (info.conditioner) {
            const cgflow::nn::ResidualMLP& net = coupling->getConditioner();
            const int H = net.getHiddenSize(), B = net.getNumBlocks(), in = net.getInputSize(), out = net.getOutputSize();
            maxWidth = std::max({maxWidth, H, in, out});
            const int base = static_cast<int>(parameterValues.size());
            parameterValues.insert(parameterValues.end(), layerParameters.begin(), layerParameters.end());
            // Where each dense layer's row-major weight (then bias) starts in the uploaded parameters.
            std::vector<int> offsets;
            for (int layer = 0; layer < net.getNumLayers(); layer++)
                offsets.push_back(base + static_cast<int>(net.getLayerParameterOffset(layer)));
            const int activation = static_cast<int>(net.getActivation());
            Step features{Step::Features};
            features.layer = l;
            steps.push_back(features);
            auto dense = [&](int input, int output, int inWidth, int outWidth, int at, int accumulate) {
                Step s{Step::Dense};
                s.layer = l;
                s.input = input;
                s.output = output;
                s.inWidth = inWidth;
                s.outWidth = outWidth;
                s.offset = at;
                s.accumulate = accumulate;
                steps.push_back(s);
            };
            auto activate = [&](int input, int output, int width) {
                Step s{Step::Activation};
                s.layer = l;
                s.input = input;
                s.output = output;
                s.outWidth = width;
                s.activation = activation;
                steps.push_back(s);
            };
            // h0 = W_in x + b_in; h += W2 f(W1 f(h) + b1) + b2 per block; raw = W_out h + b_out.
            dense(FeaturesBuffer, StreamBuffer, in, H, offsets[0], 0);
            for (int k = 0; k < B; k++) {
                activate(StreamBuffer, ActivatedBuffer, H);
                dense(ActivatedBuffer, InnerBuffer, H, H, offsets[1 + 2 * k], 0);
                activate(InnerBuffer, InnerBuffer, H);
                dense(InnerBuffer, StreamBuffer, H, H, offsets[2 + 2 * k], 1);
            }
            dense(StreamBuffer, RawBuffer, H, out, offsets.back(), 0);
        }
        else {
            info.freeRawOffset = static_cast<int>(parameterValues.size());
            parameterValues.insert(parameterValues.end(), layerParameters.begin(), layerParameters.end());
            maxWidth = std::max(maxWidth, info.rawSize);
        }
        Step transform{spline != nullptr ? Step::Spline : Step::Affine};
        transform.layer = l;
        steps.push_back(transform);
    }
    if (useDouble)
        uploadReals<double>(parameters, parameterValues, "bgParameters");
    else
        uploadReals<float>(parameters, parameterValues, "bgParameters");

    // The base density: per-dimension kinds (BaseKind values) and the constants of its draws and density.
    const cgflow::flows::BaseDensity& base = flow.getBase();
    std::vector<int> kindValues;
    for (cgflow::flows::BaseKind kind : base.getKinds())
        kindValues.push_back(static_cast<int>(kind));
    baseKinds.initialize<int>(cc, dim, "bgBaseKinds");
    baseKinds.upload(kindValues);
    baseBound = base.getTruncationBound();
    baseLowerMass = cgflow::flows::standardNormalCdf(-baseBound);
    baseTruncatedMass = 1 - 2 * baseLowerMass;
    {
        // log p_base(0) = -logNormalizer, the only constant of the density.
        Eigen::MatrixXd zero = Eigen::MatrixXd::Zero(dim, 1);
        double logP0;
        base.logProb(zero, &logP0);
        baseLogNormalizer = -logP0;
    }

    // The position map.
    if (internal) {
        const cgflow::coords::InternalCoordinates& ic = model->positions->getInternalCoordinates();
        std::vector<mm_int4> rowData;
        for (const cgflow::coords::ZMatrixRow& row : ic.getZMatrix().getRows())
            rowData.push_back(mm_int4(row.atom, std::max(row.bondPartner, 0), std::max(row.anglePartner, 0),
                                      std::max(row.dihedralPartner, 0)));
        rows.initialize<mm_int4>(cc, rowData.size(), "bgRows");
        rows.upload(rowData);
        std::vector<int> dependent(ic.getNumAtoms(), 0);
        for (int r = 3; r < ic.getNumAtoms(); r++)
            dependent[r] = ic.getZMatrix().isCircularColumn(3 * r - 4) ? 0 : 1;
        dependentDihedral.initialize<int>(cc, dependent.size(), "bgDependentDihedral");
        dependentDihedral.upload(dependent);
        const std::vector<int>& sources = model->positions->getColumnSources();
        columnSource.initialize<int>(cc, sources.size(), "bgColumnSource");
        columnSource.upload(sources);
        std::vector<double> noCondition(std::max<size_t>(1, model->positions->getConditionColumns().size()), 0.0);
        if (useDouble)
            uploadReals<double>(conditionModel, noCondition, "bgConditionModel");
        else
            uploadReals<float>(conditionModel, noCondition, "bgConditionModel");
        std::vector<double> shiftValues = ic.getShift(), scaleValues = ic.getScale();
        if (useDouble) {
            uploadReals<double>(shift, shiftValues, "bgShift");
            uploadReals<double>(scale, scaleValues, "bgScale");
        }
        else {
            uploadReals<float>(shift, shiftValues, "bgShift");
            uploadReals<float>(scale, scaleValues, "bgScale");
        }
    }
    else {
        std::vector<mm_int2> slotData;
        for (const auto& slot : model->positions->getSlots())
            slotData.push_back(mm_int2(slot[0], slot[1]));
        slots.initialize<mm_int2>(cc, slotData.size(), "bgSlots");
        slots.upload(slotData);
        // Which axes of each particle a proposal overwrites: only those lose their periodic-cell offset.
        slotAxes.assign(numAtoms, 0);
        for (const auto& slot : model->positions->getSlots())
            slotAxes[slot[0]] |= 1 << slot[1];
    }
    translation.initialize(cc, 3, cc.getUseDoublePrecision() || cc.getUseMixedPrecision() ? sizeof(double) : sizeof(float),
                           "bgTranslation");
    savedPosq.initialize(cc, cc.getPaddedNumAtoms(), 4 * realSize, "bgSavedPosq");
    savedCorrection.initialize(cc, cc.getUseMixedPrecision() ? cc.getPaddedNumAtoms() : 1, 4 * realSize, "bgSavedCorrection");
    dummyCorrection.initialize(cc, 1, 4 * realSize, "bgDummyCorrection");
    savedSlotOfAtom.initialize<int>(cc, numAtoms, "bgSavedSlotOfAtom");

    std::map<std::string, std::string> defines;
    defines["BG_MAX_BINS"] = std::to_string(maxBins);
    defines["BG_MAX_DIM"] = std::to_string(dim);
    ComputeProgram program = cc.compileProgram(CommonCGFlowKernelSources::bgFlow, defines);
    baseKernel = program->createKernel("bgBaseSample");
    placeholders(baseKernel, 13);
    featuresKernel = program->createKernel("bgCouplingFeatures");
    placeholders(featuresKernel, 10);
    denseKernel = program->createKernel("bgDense");
    placeholders(denseKernel, 8);
    activationKernel = program->createKernel("bgActivation");
    placeholders(activationKernel, 4);
    splineKernel = program->createKernel("bgSplineTransform");
    placeholders(splineKernel, 19);
    affineKernel = program->createKernel("bgAffineTransform");
    placeholders(affineKernel, 9);
    permuteKernel = program->createKernel("bgPermute");
    placeholders(permuteKernel, 4);
    shiftKernel = program->createKernel("bgCircularShift");
    placeholders(shiftKernel, 4);
    internalKernel = program->createKernel("bgInternalToCartesian");
    placeholders(internalKernel, 15);
    centroidKernel = program->createKernel("bgCentroidShift");
    placeholders(centroidKernel, 10);
    loadMoleculeKernel = program->createKernel("bgLoadMolecule");
    placeholders(loadMoleculeKernel, 7);
    loadSlotsKernel = program->createKernel("bgLoadSlots");
    placeholders(loadSlotsKernel, 8);
    restoreKernel = program->createKernel("bgRestoreReordered");
    placeholders(restoreKernel, 7);
}

void CommonIntegrateBoltzmannGeneratorStepKernel::ensureCapacity(int count) {
    if (count <= capacity)
        return;
    const bool useDouble = cc.getUseDoublePrecision();
    const int realSize = useDouble ? sizeof(double) : sizeof(float);
    const int mixedSize = useDouble || cc.getUseMixedPrecision() ? sizeof(double) : sizeof(float);
    auto allocate = [&](ComputeArray& array, size_t size, int elementSize, const char* name) {
        if (array.isInitialized())
            array.resize(size);
        else
            array.initialize(cc, size, elementSize, name);
    };
    allocate(data, static_cast<size_t>(count) * dim, realSize, "bgData");
    allocate(logQ, count, mixedSize, "bgLogQ");
    allocate(positions, internal ? static_cast<size_t>(count) * numAtoms * 3 : 1, realSize, "bgPositions");
    const size_t width = static_cast<size_t>(count) * maxWidth;
    allocate(features, width, realSize, "bgFeatures");
    allocate(stream, width, realSize, "bgStream");
    allocate(activated, width, realSize, "bgActivated");
    allocate(inner, width, realSize, "bgInner");
    allocate(raw, width, realSize, "bgRaw");
    capacity = count;
}

void CommonIntegrateBoltzmannGeneratorStepKernel::generateBlock(ContextImpl&, int count, uint64_t seed,
                                                                uint64_t firstIndex, const std::vector<double>& condition,
                                                                std::vector<double>& logQOut) {
    ContextSelector selector(cc);
    ensureCapacity(count);
    blockCount = count;
    const bool useDouble = cc.getUseDoublePrecision();
    const bool mixedIsDouble = useDouble || cc.getUseMixedPrecision();
    const cgflow::flows::Flow& flow = *model->flow;

    auto realArg = [&](ComputeKernel& kernel, int index, double value) {
        if (useDouble)
            kernel->setArg(index, value);
        else
            kernel->setArg(index, static_cast<float>(value));
    };
    auto mixedArg = [&](ComputeKernel& kernel, int index, double value) {
        if (mixedIsDouble)
            kernel->setArg(index, value);
        else
            kernel->setArg(index, static_cast<float>(value));
    };

    // Base points: proposal k is base draw firstIndex + k of the seed's stream, drawn on the device
    // with the core's counter-based scheme, so they are the points the Reference platform draws.
    baseKernel->setArg(0, count);
    baseKernel->setArg(1, dim);
    baseKernel->setArg(2, static_cast<unsigned int>(seed));
    baseKernel->setArg(3, static_cast<unsigned int>(seed >> 32));
    baseKernel->setArg(4, static_cast<unsigned int>(firstIndex));
    baseKernel->setArg(5, static_cast<unsigned int>(firstIndex >> 32));
    baseKernel->setArg(6, baseKinds);
    mixedArg(baseKernel, 7, baseBound);
    mixedArg(baseKernel, 8, baseLowerMass);
    mixedArg(baseKernel, 9, baseTruncatedMass);
    mixedArg(baseKernel, 10, baseLogNormalizer);
    baseKernel->setArg(11, data);
    baseKernel->setArg(12, logQ);
    baseKernel->execute(count);

    // Context features of a conditional flow: one row for the whole block.
    std::vector<double> contextValues;
    for (int v = 0; v < flow.getContextDimension(); v++) {
        if (flow.getContextCircular()[v]) {
            contextValues.push_back(std::cos(condition[v]));
            contextValues.push_back(std::sin(condition[v]));
        }
        else
            contextValues.push_back(condition[v]);
    }
    if (useDouble)
        uploadReals<double>(contextFeatures, contextValues, "bgContextFeatures");
    else
        uploadReals<float>(contextFeatures, contextValues, "bgContextFeatures");

    for (const Step& step : steps) {
        LayerData& info = layers[step.layer];
        switch (step.kind) {
        case Step::Features:
            featuresKernel->setArg(0, count);
            featuresKernel->setArg(1, dim);
            featuresKernel->setArg(2, data);
            featuresKernel->setArg(3, info.numPass);
            featuresKernel->setArg(4, info.passDims);
            featuresKernel->setArg(5, info.passCircular);
            featuresKernel->setArg(6, info.contextFeatures);
            featuresKernel->setArg(7, contextFeatures);
            featuresKernel->setArg(8, features);
            featuresKernel->setArg(9, info.featureWidth);
            featuresKernel->execute(count);
            break;
        case Step::Dense:
            denseKernel->setArg(0, count);
            denseKernel->setArg(1, buffer(step.input));
            denseKernel->setArg(2, step.inWidth);
            denseKernel->setArg(3, parameters);
            denseKernel->setArg(4, step.offset);
            denseKernel->setArg(5, buffer(step.output));
            denseKernel->setArg(6, step.outWidth);
            denseKernel->setArg(7, step.accumulate);
            {
                // One work group of 16 x 16 threads per 16 x 16 tile of the output (bgDense's BG_TILE).
                const int tiles = ((count + 15) / 16) * ((step.outWidth + 15) / 16);
                denseKernel->execute(tiles * 256, 256);
            }
            break;
        case Step::Activation:
            activationKernel->setArg(0, count * step.outWidth);
            activationKernel->setArg(1, buffer(step.input));
            activationKernel->setArg(2, buffer(step.output));
            activationKernel->setArg(3, step.activation);
            activationKernel->execute(count * step.outWidth);
            break;
        case Step::Spline:
            // With free parameters every sample reads the same row of the parameters buffer (stride 0).
            splineKernel->setArg(0, count);
            splineKernel->setArg(1, dim);
            splineKernel->setArg(2, data);
            splineKernel->setArg(3, info.numReal);
            splineKernel->setArg(4, info.numCircular);
            splineKernel->setArg(5, info.transformedDims);
            splineKernel->setArg(6, info.conditioner ? raw : parameters);
            splineKernel->setArg(7, info.conditioner ? 0 : info.freeRawOffset);
            splineKernel->setArg(8, info.conditioner ? info.rawSize : 0);
            splineKernel->setArg(9, info.numBins);
            realArg(splineKernel, 10, info.bound);
            realArg(splineKernel, 11, info.minWidth);
            realArg(splineKernel, 12, info.minHeight);
            realArg(splineKernel, 13, info.minDerivative);
            splineKernel->setArg(14, info.numBins);
            realArg(splineKernel, 15, info.minWidth);
            realArg(splineKernel, 16, info.minHeight);
            realArg(splineKernel, 17, info.minDerivative);
            splineKernel->setArg(18, logQ);
            splineKernel->execute(count);
            break;
        case Step::Affine:
            affineKernel->setArg(0, count);
            affineKernel->setArg(1, dim);
            affineKernel->setArg(2, data);
            affineKernel->setArg(3, info.numReal + info.numCircular);
            affineKernel->setArg(4, info.transformedDims);
            affineKernel->setArg(5, info.conditioner ? raw : parameters);
            affineKernel->setArg(6, info.conditioner ? 0 : info.freeRawOffset);
            affineKernel->setArg(7, info.conditioner ? info.rawSize : 0);
            affineKernel->setArg(8, logQ);
            affineKernel->execute(count);
            break;
        case Step::Permute:
            permuteKernel->setArg(0, count);
            permuteKernel->setArg(1, dim);
            permuteKernel->setArg(2, data);
            permuteKernel->setArg(3, info.order);
            permuteKernel->execute(count);
            break;
        case Step::Shift:
            shiftKernel->setArg(0, count);
            shiftKernel->setArg(1, dim);
            shiftKernel->setArg(2, data);
            shiftKernel->setArg(3, info.shifts);
            shiftKernel->execute(count * dim);
            break;
        }
    }
    if (internal) {
        const cgflow::coords::InternalCoordinates& ic = model->positions->getInternalCoordinates();
        const auto& conditionColumns = model->positions->getConditionColumns();
        if (!conditionColumns.empty()) {
            // The model value of a circular column is the dihedral minus its shift, wrapped (as the core map).
            std::vector<double> values;
            for (const auto& column : conditionColumns) {
                values.push_back(cgflow::flows::RQSpline::wrapAngle(condition[column.condition] - ic.getShift()[column.column]));
            }
            if (useDouble)
                uploadReals<double>(conditionModel, values, "bgConditionModel");
            else
                uploadReals<float>(conditionModel, values, "bgConditionModel");
        }
        internalKernel->setArg(0, count);
        internalKernel->setArg(1, dim);
        internalKernel->setArg(2, data);
        internalKernel->setArg(3, numAtoms);
        internalKernel->setArg(4, rows);
        internalKernel->setArg(5, shift);
        internalKernel->setArg(6, scale);
        internalKernel->setArg(7, ic.getJacobianConvention() == cgflow::coords::InternalCoordinates::JacobianConvention::Full ? 1 : 0);
        mixedArg(internalKernel, 8, ic.getLogScaleSum());
        internalKernel->setArg(9, positions);
        internalKernel->setArg(10, logQ);
        internalKernel->setArg(11, columnSource);
        internalKernel->setArg(12, conditionModel);
        internalKernel->setArg(13, dependentDihedral);
        realArg(internalKernel, 14, std::numeric_limits<double>::quiet_NaN());
        internalKernel->execute(count);
    }
    logQOut.resize(count);
    if (mixedIsDouble) {
        std::vector<double> values(capacity);
        logQ.download(values);
        std::copy(values.begin(), values.begin() + count, logQOut.begin());
    }
    else {
        std::vector<float> values(capacity);
        logQ.download(values);
        std::copy(values.begin(), values.begin() + count, logQOut.begin());
    }
}

void CommonIntegrateBoltzmannGeneratorStepKernel::loadProposal(ContextImpl&, int index) {
    ContextSelector selector(cc);
    if (index < 0 || index >= blockCount)
        throw OpenMMException("BoltzmannGeneratorIntegrator: proposal " + std::to_string(index) +
                              " is outside the current block of " + std::to_string(blockCount));
    ArrayInterface& correction = cc.getUseMixedPrecision() ? cc.getPosqCorrection() : dummyCorrection;
    std::vector<mm_int4>& cellOffsets = cc.getPosCellOffsets();
    if (internal) {
        // The template's centroid is that of the Context's positions, posq - offset . box (posq is
        // wrapped into the box when the atoms are reordered), as the Reference platform sees them.
        Vec3 cellShift;
        mm_int4 offsetSum(0, 0, 0, 0);
        for (int slot = 0; slot < numAtoms; slot++) {
            offsetSum.x += cellOffsets[slot].x;
            offsetSum.y += cellOffsets[slot].y;
            offsetSum.z += cellOffsets[slot].z;
        }
        if (offsetSum.x != 0 || offsetSum.y != 0 || offsetSum.z != 0) {
            Vec3 a, b, c;
            cc.getPeriodicBoxVectors(a, b, c);
            cellShift = (a * offsetSum.x + b * offsetSum.y + c * offsetSum.z) / numAtoms;
        }
        const bool mixedIsDouble = cc.getUseDoublePrecision() || cc.getUseMixedPrecision();
        for (int axis = 0; axis < 3; axis++) {
            if (mixedIsDouble)
                centroidKernel->setArg(6 + axis, cellShift[axis]);
            else
                centroidKernel->setArg(6 + axis, static_cast<float>(cellShift[axis]));
        }
        centroidKernel->setArg(0, numAtoms);
        centroidKernel->setArg(1, cc.getPosq());
        centroidKernel->setArg(2, correction);
        centroidKernel->setArg(3, cc.getAtomIndexArray());
        centroidKernel->setArg(4, positions);
        centroidKernel->setArg(5, index);
        centroidKernel->setArg(9, translation);
        centroidKernel->execute(1);
        loadMoleculeKernel->setArg(0, numAtoms);
        loadMoleculeKernel->setArg(1, cc.getPosq());
        loadMoleculeKernel->setArg(2, correction);
        loadMoleculeKernel->setArg(3, cc.getAtomIndexArray());
        loadMoleculeKernel->setArg(4, positions);
        loadMoleculeKernel->setArg(5, index);
        loadMoleculeKernel->setArg(6, translation);
        loadMoleculeKernel->execute(numAtoms);
        // Every particle now has an absolute position, as after Context::setPositions.
        for (mm_int4& offset : cellOffsets)
            offset = mm_int4(0, 0, 0, 0);
    }
    else {
        loadSlotsKernel->setArg(0, numAtoms);
        loadSlotsKernel->setArg(1, cc.getPosq());
        loadSlotsKernel->setArg(2, correction);
        loadSlotsKernel->setArg(3, cc.getAtomIndexArray());
        loadSlotsKernel->setArg(4, data);
        loadSlotsKernel->setArg(5, dim);
        loadSlotsKernel->setArg(6, index);
        loadSlotsKernel->setArg(7, slots);
        loadSlotsKernel->execute(numAtoms);
        // The overwritten axes hold absolute values now; every other coordinate keeps its cell offset,
        // so the Context still reports the unwrapped positions it had there.
        const std::vector<int>& atomIndex = cc.getAtomIndex();
        for (int slot = 0; slot < numAtoms; slot++) {
            const int axes = slotAxes[atomIndex[slot]];
            if (axes & 1)
                cellOffsets[slot].x = 0;
            if (axes & 2)
                cellOffsets[slot].y = 0;
            if (axes & 4)
                cellOffsets[slot].z = 0;
        }
    }
}

void CommonIntegrateBoltzmannGeneratorStepKernel::saveState(ContextImpl&) {
    ContextSelector selector(cc);
    cc.getPosq().copyTo(savedPosq);
    if (cc.getUseMixedPrecision())
        cc.getPosqCorrection().copyTo(savedCorrection);
    savedAtomIndex = cc.getAtomIndex();
    savedCellOffsets = cc.getPosCellOffsets();
}

void CommonIntegrateBoltzmannGeneratorStepKernel::restoreState(ContextImpl&) {
    ContextSelector selector(cc);
    if (cc.getAtomIndex() == savedAtomIndex) {
        savedPosq.copyTo(cc.getPosq());
        if (cc.getUseMixedPrecision())
            savedCorrection.copyTo(cc.getPosqCorrection());
        cc.getPosCellOffsets() = savedCellOffsets;
        return;
    }
    // The atoms were reordered while the proposal was priced: put each one back where it now lives.
    std::vector<int> slotOfAtom(numAtoms);
    for (int slot = 0; slot < numAtoms; slot++)
        slotOfAtom[savedAtomIndex[slot]] = slot;
    savedSlotOfAtom.upload(slotOfAtom);
    const std::vector<int>& atomIndex = cc.getAtomIndex();
    std::vector<mm_int4>& cellOffsets = cc.getPosCellOffsets();
    for (int slot = 0; slot < numAtoms; slot++)
        cellOffsets[slot] = savedCellOffsets[slotOfAtom[atomIndex[slot]]];
    ArrayInterface& correction = cc.getUseMixedPrecision() ? cc.getPosqCorrection() : dummyCorrection;
    restoreKernel->setArg(0, numAtoms);
    restoreKernel->setArg(1, cc.getPosq());
    restoreKernel->setArg(2, correction);
    restoreKernel->setArg(3, cc.getAtomIndexArray());
    restoreKernel->setArg(4, savedPosq);
    restoreKernel->setArg(5, savedCorrection);
    restoreKernel->setArg(6, savedSlotOfAtom);
    restoreKernel->execute(numAtoms);
}

double CommonIntegrateBoltzmannGeneratorStepKernel::computeKineticEnergy(ContextImpl&) {
    ContextSelector selector(cc);
    return cc.getIntegrationUtilities().computeKineticEnergy(0);
}
