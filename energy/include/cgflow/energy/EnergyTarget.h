#ifndef CGFLOW_TRAIN_ENERGYTARGET_H_
#define CGFLOW_TRAIN_ENERGYTARGET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cgflow::energy {

/**
 * Potential energies and forces of an OpenMM System for batches of configurations: the cost
 * unit of every training and reweighting method. A pool of OpenMM Contexts, one per thread,
 * splits each batch into contiguous chunks, so the results do not depend on the thread count.
 *
 * Every configuration handed to evaluate() is counted as one energy evaluation, per phase
 * ("train", "reweight", ...), including those whose result is not finite: clashes produced by
 * an untrained flow cost an evaluation too. Non-finite results (NaN/inf energies or forces,
 * or OpenMM refusing NaN coordinates) are flagged per configuration and never throw.
 *
 * Optional energy regularization for training (as in the data-free coarse-graining papers):
 * E' = E below eHigh, eHigh + log(1 + E - eHigh) above it, capped at eMax; forces are scaled
 * by dE'/dE (zero where capped).
 *
 * evaluate() is serialized by a mutex: one EnergyTarget runs one batch at a time.
 */
class EnergyTarget {
public:
    /**
     * @param systemXml     an OpenMM System serialized with XmlSerializer
     * @param platformName  OpenMM platform for the Contexts ("Reference", "CPU", "OpenCL", ...)
     * @param numThreads    Contexts/threads (>= 1)
     * @param properties    platform properties (e.g. {"Threads": "1"} for CPU, {"Precision": "double"})
     * @param forceGroups   bit mask of force groups to evaluate (-1: all)
     */
    EnergyTarget(const std::string& systemXml, const std::string& platformName = "Reference", int numThreads = 1,
                 const std::map<std::string, std::string>& properties = {}, int forceGroups = -1);
    ~EnergyTarget();
    EnergyTarget(const EnergyTarget&) = delete;
    EnergyTarget& operator=(const EnergyTarget&) = delete;

    int getNumParticles() const { return numParticles; }
    int getNumThreads() const { return (int) workers.size(); }
    const std::string& getPlatformName() const { return platformName; }

    /**
     * positions: batch x numParticles x 3 doubles (nm), row-major.
     * energies:  batch doubles (kJ/mol), regularized if regularization is on.
     * forces:    batch x numParticles x 3 (kJ/mol/nm), or nullptr to skip forces.
     * finite:    batch flags, 1 where energy and forces are finite, or nullptr.
     * rawEnergies: unregularized energies, or nullptr.
     * Returns the number of non-finite configurations.
     */
    int evaluate(const double* positions, int batch, double* energies, double* forces, uint8_t* finite,
                 const std::string& phase = "default", double* rawEnergies = nullptr);

    void setEnergyRegularization(double eHigh, double eMax);
    void clearEnergyRegularization();
    bool hasEnergyRegularization() const { return regularize; }

    long long getEvaluationCount(const std::string& phase) const;
    long long getTotalEvaluationCount() const;
    std::map<std::string, long long> getEvaluationCounts() const;
    /** Reset one phase's count, or all counts when phase is empty. */
    void resetEvaluationCounts(const std::string& phase = "");

private:
    struct Worker;
    void evaluateChunk(Worker& worker, const double* positions, int begin, int end, double* energies,
                       double* forces, uint8_t* finite, double* rawEnergies, int* nonFinite);
    int numParticles = 0;
    int forceGroups = -1;
    std::string platformName;
    std::vector<std::unique_ptr<Worker>> workers;
    bool regularize = false;
    double eHigh = 0, eMax = 0;
    std::map<std::string, long long> counts;
    mutable std::mutex countMutex;
    std::mutex evaluateMutex;
};

} // namespace cgflow::energy

#endif
