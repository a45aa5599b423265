// _core bindings for molecular coordinates: Z-matrices, batched internal coordinates,
// chirality, and CG maps with their force maps. Batches are numpy arrays (batch, atoms, 3).
#include "Bindings.h"
#include "cgflow/Error.h"
#include "cgflow/coords/CGMap.h"
#include "cgflow/coords/CGMapDihedral.h"
#include "cgflow/coords/Chirality.h"
#include "cgflow/coords/InternalCoordinates.h"
#include "cgflow/coords/ZMatrix.h"
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

namespace py = pybind11;
using namespace cgflow::coords;
using cgflow::Error;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

/** A batch of configurations as (batch, atoms, 3); a single (atoms, 3) one becomes a batch of 1. */
Array batchOfConfigurations(Array x, int numAtoms, const char* name) {
    if (x.ndim() == 2 && x.shape(0) == numAtoms && x.shape(1) == 3)
        x = x.reshape({1, numAtoms, 3});
    if (x.ndim() != 3 || x.shape(1) != numAtoms || x.shape(2) != 3)
        throw Error(std::string(name) + ": expected shape (batch, " + std::to_string(numAtoms) + ", 3)");
    return x;
}

/** An optional seed (None or an integer in [0, 2^64)); Error naming the argument otherwise. */
bool optionalSeed(const py::object& value, const char* name, uint64_t& seed) {
    if (value.is_none())
        return false;
    const std::string expected = std::string(name) + ": expected None or an integer in [0, 2^64), got " +
                                 py::repr(value).cast<std::string>();
    if (!PyIndex_Check(value.ptr()))  // ints and numpy integers; not floats (3.7 would be truncated)
        throw Error(expected);
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
    if (!index)
        throw py::error_already_set();
    const unsigned long long converted = PyLong_AsUnsignedLongLong(index.ptr());
    if (converted == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();  // negative or >= 2^64
        throw Error(expected);
    }
    seed = static_cast<uint64_t>(converted);
    return true;
}

Array batchOfVectors(Array q, int dim, const char* name) {
    if (q.ndim() == 1 && q.shape(0) == dim)
        q = q.reshape({1, dim});
    if (q.ndim() != 2 || q.shape(1) != dim)
        throw Error(std::string(name) + ": expected shape (batch, " + std::to_string(dim) + ")");
    return q;
}

const char* typeName(InternalCoordinateType t) {
    return t == InternalCoordinateType::Bond ? "bond" : (t == InternalCoordinateType::Angle ? "angle" : "dihedral");
}

ChiralCenter centerFrom(const std::vector<int>& atoms) {
    if (atoms.size() != 4 && atoms.size() != 5)
        throw Error("center: expected (alpha_carbon, nitrogen, carbonyl_carbon, beta_carbon[, alpha_hydrogen])");
    ChiralCenter c;
    c.alphaCarbon = atoms[0];
    c.nitrogen = atoms[1];
    c.carbonylCarbon = atoms[2];
    c.betaCarbon = atoms[3];
    c.alphaHydrogen = atoms.size() == 5 ? atoms[4] : -1;
    return c;
}

} // namespace

void bindCoordinates(py::module_& m) {
    py::class_<ZMatrix>(m, "ZMatrix", "Placement rows (atom, bond, angle, dihedral partner, circular); the first three "
                                      "atoms fix the frame, so N atoms have 3N - 6 internal coordinates.")
        .def(py::init([](const std::vector<std::tuple<int, int, int, int, bool>>& rows) {
                 std::vector<ZMatrixRow> r;
                 for (const auto& t : rows)
                     r.push_back({std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t)});
                 return ZMatrix(r);
             }), py::arg("rows"), "rows: (atom, bond_partner, angle_partner, dihedral_partner, circular); -1 where unused")
        .def_static("from_bonds", &ZMatrix::fromBonds, py::arg("num_atoms"), py::arg("bonds"),
                    py::arg("masses") = std::vector<double>())
        .def_static("alanine_dipeptide", &ZMatrix::alanineDipeptide,
                    "The Z-matrix of FAB / the conditional-flow paper (ACE-ALA-NME atom order, 12 circular torsions).")
        .def_property_readonly("num_atoms", &ZMatrix::getNumAtoms)
        .def_property_readonly("num_internal", &ZMatrix::getNumInternal)
        .def_property_readonly("rows", [](const ZMatrix& z) {
            std::vector<std::tuple<int, int, int, int, bool>> rows;
            for (const ZMatrixRow& r : z.getRows())
                rows.emplace_back(r.atom, r.bondPartner, r.anglePartner, r.dihedralPartner, r.circular);
            return rows;
        })
        .def_property_readonly("reference_atoms", &ZMatrix::getReferenceAtoms)
        .def_property_readonly("circular_columns", &ZMatrix::getCircularColumns)
        .def_property_readonly("column_types", [](const ZMatrix& z) {
            std::vector<std::string> types;
            for (int c = 0; c < z.getNumInternal(); c++)
                types.push_back(typeName(z.getColumnType(c)));
            return types;
        })
        .def("column_atoms", &ZMatrix::getColumnAtoms, py::arg("column"))
        .def("describe_column", &ZMatrix::describeColumn, py::arg("column"));

    py::class_<InternalCoordinates>(m, "InternalCoordinates",
        "Batched Cartesian <-> internal coordinates with log|det J| of internal -> Cartesian and backward passes.")
        .def(py::init<ZMatrix>(), py::arg("zmatrix"))
        .def_property_readonly("zmatrix", &InternalCoordinates::getZMatrix)
        .def_property_readonly("num_atoms", &InternalCoordinates::getNumAtoms)
        .def_property_readonly("num_internal", &InternalCoordinates::getNumInternal)
        .def_property("threads", &InternalCoordinates::getNumThreads, &InternalCoordinates::setNumThreads)
        .def_property("jacobian_convention",
            [](const InternalCoordinates& ic) { return ic.getJacobianConvention() == InternalCoordinates::JacobianConvention::Full ? "full" : "frame"; },
            [](InternalCoordinates& ic, const std::string& c) {
                if (c == "full")
                    ic.setJacobianConvention(InternalCoordinates::JacobianConvention::Full);
                else if (c == "frame")
                    ic.setJacobianConvention(InternalCoordinates::JacobianConvention::Frame);
                else
                    throw Error("jacobian_convention: 'full' or 'frame', got '" + c + "'");
            })
        .def("set_normalization", [](InternalCoordinates& ic, Array reference, double bond, double angle, double dihedral) {
                 reference = batchOfConfigurations(reference, ic.getNumAtoms(), "reference");
                 if (reference.shape(0) != 1)
                     throw Error("reference: expected one structure (" + std::to_string(ic.getNumAtoms()) +
                                 ", 3), got a batch of " + std::to_string(reference.shape(0)));
                 InternalCoordinates::NormalizationScales s;
                 s.bond = bond;
                 s.angle = angle;
                 s.dihedral = dihedral;
                 ic.setNormalization(reference.data(), s);
             }, py::arg("reference"), py::arg("bond") = 0.005, py::arg("angle") = 0.15, py::arg("dihedral") = 0.2,
             "Shift by the reference structure's internal coordinates and scale (nm, rad); circular torsions are not scaled.")
        .def("clear_normalization", &InternalCoordinates::clearNormalization)
        .def_property_readonly("normalized", &InternalCoordinates::isNormalized)
        .def_property_readonly("log_scale_sum", &InternalCoordinates::getLogScaleSum)
        .def("to_internal", [](const InternalCoordinates& ic, Array x) {
                 x = batchOfConfigurations(x, ic.getNumAtoms(), "x");
                 int batch = (int) x.shape(0);
                 py::array_t<double> q({batch, ic.getNumInternal()}), logdet(batch);
                 {
                     py::gil_scoped_release release;
                     ic.toInternal(batch, x.data(), q.mutable_data(), logdet.mutable_data());
                 }
                 return py::make_tuple(q, logdet);
             }, py::arg("x"), "x (batch, N, 3) nm -> (internal (batch, 3N-6), log|det J| of the map internal -> Cartesian at that point)")
        .def("to_cartesian", [](const InternalCoordinates& ic, Array q, py::object seed) {
                 q = batchOfVectors(q, ic.getNumInternal(), "q");
                 int batch = (int) q.shape(0);
                 py::array_t<double> x({batch, ic.getNumAtoms(), 3}), logdet(batch);
                 std::vector<RigidMotion> motions;
                 uint64_t rotationSeed = 0;
                 if (optionalSeed(seed, "rotation_seed", rotationSeed))
                     motions = RigidMotion::randomRotations(rotationSeed, batch);
                 {
                     py::gil_scoped_release release;
                     ic.toCartesian(batch, q.data(), x.mutable_data(), logdet.mutable_data(), motions.empty() ? nullptr : motions.data());
                 }
                 return py::make_tuple(x, logdet);
             }, py::arg("q"), py::arg("rotation_seed") = py::none(),
             "internal (batch, 3N-6) -> (x (batch, N, 3) in the canonical frame, or randomly rotated when rotation_seed "
             "is given; log|det J|)")
        .def("to_cartesian_backward", [](const InternalCoordinates& ic, Array q, py::object dx, py::object dlogdet) {
                 q = batchOfVectors(q, ic.getNumInternal(), "q");
                 int batch = (int) q.shape(0);
                 Array gx, gl;
                 if (!dx.is_none())
                     gx = batchOfConfigurations(dx.cast<Array>(), ic.getNumAtoms(), "dL_dx");
                 if (!dlogdet.is_none())
                     gl = dlogdet.cast<Array>();
                 if (!dx.is_none() && gx.shape(0) != batch)
                     throw Error("dL_dx: batch size differs from q");
                 if (!dlogdet.is_none() && (gl.ndim() != 1 || gl.shape(0) != batch))
                     throw Error("dL_dlogdet: expected shape (batch,)");
                 py::array_t<double> gq({batch, ic.getNumInternal()});
                 ic.toCartesianBackward(batch, q.data(), dx.is_none() ? nullptr : gx.data(), dlogdet.is_none() ? nullptr : gl.data(),
                                        gq.mutable_data());
                 return gq;
             }, py::arg("q"), py::arg("dL_dx") = py::none(), py::arg("dL_dlogdet") = py::none())
        .def("to_internal_backward", [](const InternalCoordinates& ic, Array x, py::object dq, py::object dlogdet) {
                 x = batchOfConfigurations(x, ic.getNumAtoms(), "x");
                 int batch = (int) x.shape(0);
                 Array gq, gl;
                 if (!dq.is_none())
                     gq = batchOfVectors(dq.cast<Array>(), ic.getNumInternal(), "dL_dq");
                 if (!dlogdet.is_none())
                     gl = dlogdet.cast<Array>();
                 if (!dq.is_none() && gq.shape(0) != batch)
                     throw Error("dL_dq: batch size differs from x");
                 if (!dlogdet.is_none() && (gl.ndim() != 1 || gl.shape(0) != batch))
                     throw Error("dL_dlogdet: expected shape (batch,)");
                 py::array_t<double> gx({batch, ic.getNumAtoms(), 3});
                 ic.toInternalBackward(batch, x.data(), dq.is_none() ? nullptr : gq.data(), dlogdet.is_none() ? nullptr : gl.data(),
                                       gx.mutable_data());
                 return gx;
             }, py::arg("x"), py::arg("dL_dq") = py::none(), py::arg("dL_dlogdet") = py::none())
        .def("to_canonical_frame", [](const InternalCoordinates& ic, Array x) {
                 x = batchOfConfigurations(x, ic.getNumAtoms(), "x");
                 py::array_t<double> out({(int) x.shape(0), ic.getNumAtoms(), 3});
                 ic.toCanonicalFrame((int) x.shape(0), x.data(), out.mutable_data());
                 return out;
             }, py::arg("x"));

    m.def("detect_chirality", [](Array x, const std::vector<int>& center) {
              ChiralCenter c = centerFrom(center);
              int n = (int) (x.ndim() >= 2 ? x.shape(x.ndim() - 2) : 0);
              x = batchOfConfigurations(x, n, "x");
              validateChiralCenter(c, n);
              std::vector<Chirality> r = detectChirality(c, n, (int) x.shape(0), x.data());
              py::array_t<int> out((py::ssize_t) r.size());
              for (size_t i = 0; i < r.size(); i++)
                  out.mutable_data()[i] = (int) r[i];
              return out;
          }, py::arg("x"), py::arg("center") = std::vector<int>{8, 6, 14, 10, 9},
          "+1 for L, -1 for D, 0 undetermined, per configuration; center = (CA, N, C, CB[, HA]), default alanine dipeptide.");

    py::class_<LinearMap>(m, "LinearMap", "CG beads R_I = sum_j c_Ij r_j with a valid force map (sum over the bead's atoms "
                                          "for disjoint groups, minimum-norm weights otherwise).")
        .def(py::init<const Eigen::MatrixXd&>(), py::arg("coefficients"))
        .def(py::init<const Eigen::MatrixXd&, const Eigen::MatrixXd&>(), py::arg("coefficients"),
             py::arg("force_coefficients"),
             "An explicit force map b (beads x atoms), checked against sum_j b_Ij c_Jj = delta_IJ: e.g. a slice "
             "map whose bead forces aggregate the forces of the atoms attached to each bead.")
        .def_static("center_of_mass", &LinearMap::centerOfMass, py::arg("groups"), py::arg("masses"))
        .def_static("center_of_geometry", &LinearMap::centerOfGeometry, py::arg("num_atoms"), py::arg("groups"))
        .def_property_readonly("num_atoms", &LinearMap::getNumAtoms)
        .def_property_readonly("num_beads", &LinearMap::getNumBeads)
        .def_property_readonly("force_map_type", [](const LinearMap& map) { return forceMapTypeName(map.getForceMapType()); })
        .def_property_readonly("coefficients", &LinearMap::getCoefficients)
        .def_property_readonly("force_coefficients", &LinearMap::getForceCoefficients)
        .def("map_positions", [](const LinearMap& map, Array x) {
                 x = batchOfConfigurations(x, map.getNumAtoms(), "x");
                 py::array_t<double> out({(int) x.shape(0), map.getNumBeads(), 3});
                 map.mapPositions((int) x.shape(0), x.data(), out.mutable_data());
                 return out;
             }, py::arg("x"))
        .def("map_forces", [](const LinearMap& map, Array f) {
                 f = batchOfConfigurations(f, map.getNumAtoms(), "forces");
                 py::array_t<double> out({(int) f.shape(0), map.getNumBeads(), 3});
                 map.mapForces((int) f.shape(0), f.data(), out.mutable_data());
                 return out;
             }, py::arg("forces"))
        .def("distribute_forces", [](const LinearMap& map, Array F) {
                 F = batchOfConfigurations(F, map.getNumBeads(), "cg_forces");
                 py::array_t<double> out({(int) F.shape(0), map.getNumAtoms(), 3});
                 map.distributeForces((int) F.shape(0), F.data(), out.mutable_data());
                 return out;
             }, py::arg("cg_forces"), "Atom forces c^T F of a CG potential (or bias) acting on the beads.");

    py::class_<SliceMap, LinearMap>(m, "SliceMap", "CG beads = a subset of atoms; forces on the kept atoms.")
        .def(py::init<int, const std::vector<int>&>(), py::arg("num_atoms"), py::arg("atoms"))
        .def_property_readonly("atoms", &SliceMap::getAtoms)
        .def_static("alanine_dipeptide", &SliceMap::alanineDipeptide, py::arg("mapping"),
                    "'heavy_atom' (10 beads) or 'core_beta' (backbone + C-beta, 6 beads).");

    py::class_<DihedralCGMap>(m, "DihedralCGMap", "Dihedral CG variables (e.g. phi, psi) with Jacobians and force maps.")
        .def(py::init<int, const std::vector<std::array<int, 4>>&, const std::vector<std::vector<int>>&>(),
             py::arg("num_atoms"), py::arg("dihedrals"), py::arg("rotating_atoms") = std::vector<std::vector<int>>())
        .def_static("alanine_dipeptide_phi_psi", &DihedralCGMap::alanineDipeptidePhiPsi)
        .def_property_readonly("num_atoms", &DihedralCGMap::getNumAtoms)
        .def_property_readonly("num_dihedrals", &DihedralCGMap::getNumDihedrals)
        .def("map_positions", [](const DihedralCGMap& map, Array x) {
                 x = batchOfConfigurations(x, map.getNumAtoms(), "x");
                 py::array_t<double> out({(int) x.shape(0), map.getNumDihedrals()});
                 map.mapPositions((int) x.shape(0), x.data(), out.mutable_data());
                 return out;
             }, py::arg("x"), "angles (batch, K) in (-pi, pi]")
        .def("jacobian", [](const DihedralCGMap& map, Array x) {
                 x = batchOfConfigurations(x, map.getNumAtoms(), "x");
                 py::array_t<double> out({(int) x.shape(0), map.getNumDihedrals(), map.getNumAtoms(), 3});
                 map.computeJacobian((int) x.shape(0), x.data(), out.mutable_data());
                 return out;
             }, py::arg("x"), "d angle_k / d x, shape (batch, K, N, 3)")
        .def("map_forces", [](const DihedralCGMap& map, Array x, Array f) {
                 x = batchOfConfigurations(x, map.getNumAtoms(), "x");
                 f = batchOfConfigurations(f, map.getNumAtoms(), "forces");
                 if (f.shape(0) != x.shape(0))
                     throw Error("forces: batch size differs from x");
                 py::array_t<double> out({(int) x.shape(0), map.getNumDihedrals()});
                 map.mapForces((int) x.shape(0), x.data(), f.data(), out.mutable_data());
                 return out;
             }, py::arg("x"), py::arg("forces"), "generalized forces -dU/d angle_k estimated from atom forces")
        .def("atom_forces", [](const DihedralCGMap& map, Array x, Array dVds) {
                 x = batchOfConfigurations(x, map.getNumAtoms(), "x");
                 dVds = batchOfVectors(dVds, map.getNumDihedrals(), "dV_ds");
                 if (dVds.shape(0) != x.shape(0))
                     throw Error("dV_ds: batch size differs from x");
                 py::array_t<double> out({(int) x.shape(0), map.getNumAtoms(), 3});
                 std::fill(out.mutable_data(), out.mutable_data() + out.size(), 0.0);
                 map.addAtomForces((int) x.shape(0), x.data(), dVds.data(), out.mutable_data());
                 return out;
             }, py::arg("x"), py::arg("dV_ds"), "atom forces -sum_k dV/ds_k grad s_k of a CG potential V(s)");
}
