// DICOM series as scanners and archives write them, damaged and unusual: each kind is a folder
// of the cohort (its name the kind's), written at test time with ITK's GDCM writer and edited
// with DCMTK.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <fstream>

#include "corpus/corpus.hpp"
#include "corpus/volume_bytes.hpp"
#include "dicom_fixtures.hpp"

namespace spineparse::testing {
namespace fs = std::filesystem;

namespace {

// x + 2y + 3z + 1 at [z, x, y] of a [D, H, W] volume, as every corpus volume stores.
NdArrayPtr pattern(std::int64_t D, std::int64_t H, std::int64_t W) {
  auto a = NdArray::make<float>({D, H, W});
  for (std::int64_t z = 0; z < D; ++z)
    for (std::int64_t x = 0; x < H; ++x)
      for (std::int64_t y = 0; y < W; ++y)
        a->data<float>()[(z * H + x) * W + y] = static_cast<float>(x + 2 * y + 3 * z + 1);
  return a;
}

Geometry sagittal() {
  Geometry g;
  g.spacing = {0.5, 0.75, 4.0};
  g.origin = {10, -20, 5};
  // Sagittal, and right-handed as DICOM slices are ordered: the slice axis is row x column, so
  // the volume read back has the slices in the order written.
  g.direction = {0, 0, -1, 1, 0, 0, 0, -1, 0};
  return g;
}

std::string series(const fs::path& folder, std::int64_t slices = 6, std::int64_t size = 12,
                   DicomSeriesSpec spec = {}) {
  static int count = 0;  // each series its own SeriesInstanceUID, unless the kind gives one
  if (spec.series_uid == DicomSeriesSpec{}.series_uid)
    spec.series_uid += "." + std::to_string(100 + ++count);
  spec.folder = folder.string();
  spec.description = folder.filename().string();
  write_dicom_series(*pattern(slices, size, size - 2), sagittal(), spec);
  return spec.folder;
}

// One Enhanced MR object, folder/obj.dcm, of the corpus pattern on the sagittal grid.
std::string enhanced(const fs::path& folder, EnhancedSpec spec) {
  static int count = 0;
  spec.path = (folder / "obj.dcm").string();
  spec.series_uid += "." + std::to_string(200 + ++count);
  spec.description = folder.filename().string();
  write_enhanced_mr(*pattern(6, 12, 10), sagittal(), spec);
  return folder.string();
}

std::vector<fs::path> files_in(const fs::path& folder) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(folder)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Loads each file with DCMTK, applies `edit(dataset, index)` and saves it (in `xfer` if given).
void edit(const fs::path& folder, const std::function<void(DcmDataset&, int)>& fn,
          E_TransferSyntax xfer = EXS_Unknown) {
  int i = 0;
  for (const auto& f : files_in(folder)) {
    DcmFileFormat ff;
    if (ff.loadFile(f.c_str()).bad()) throw std::runtime_error("DCMTK cannot load " + f.string());
    fn(*ff.getDataset(), i++);
    if (xfer != EXS_Unknown) ff.getDataset()->chooseRepresentation(xfer, nullptr);
    if (ff.saveFile(f.c_str(), xfer == EXS_Unknown ? EXS_LittleEndianExplicit : xfer).bad())
      throw std::runtime_error("DCMTK cannot save " + f.string());
  }
}

void bytes_to(const fs::path& p, const std::string& b) {
  std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
}

using Make = std::function<void(const fs::path& folder)>;

CorpusKind k(std::string name, std::string expect, std::string message, Make make,
             int min_records = 1) {
  return CorpusKind{name, expect, message,
                    [make](const fs::path& dir, const std::string& id) { make(dir / id); },
                    min_records};
}

}  // namespace

std::vector<CorpusKind> dicom_kinds() {
  return {
      k("dcm_good", "ok", "", [](const fs::path& f) { series(f); }),
      k("dcm_noext", "ok", "", [](const fs::path& f) { series(f); }),
      k("dcm_implicit_vr", "ok", "",
        [](const fs::path& f) { edit(series(f), [](DcmDataset&, int) {}, EXS_LittleEndianImplicit); }),
      k("dcm_big_endian", "ok", "",
        [](const fs::path& f) { edit(series(f), [](DcmDataset&, int) {}, EXS_BigEndianExplicit); }),
      k("dcm_many_tiny_files", "ok", "", [](const fs::path& f) { series(f, 250, 4); }),
      k("dcm_bits_allocated_12", "failed", "BitsAllocated 12 is not supported",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int) { d.putAndInsertUint16(DCM_BitsAllocated, 12); });
        }),
      k("dcm_truncated_slice", "failed", "S1_IM3.dcm",
        [](const fs::path& f) {
          const fs::path im3 = fs::path(series(f)) / "S1_IM3.dcm";
          fs::resize_file(im3, fs::file_size(im3) - 60);
        }),
      k("dcm_no_pixel_data", "failed", "no PixelData",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int i) {
            if (i == 1) d.findAndDeleteElement(DCM_PixelData);
          });
        }),
      k("dcm_rows_disagree", "failed", "Rows/Columns",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int) { d.putAndInsertUint16(DCM_Rows, 24); });
        }),
      k("dcm_orientation_nan", "failed", "ImageOrientationPatient",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int) {
            d.putAndInsertString(DCM_ImageOrientationPatient, "nan\\0\\0\\0\\1\\0");
          });
        }),
      k("dcm_orientation_not_unit", "failed", "not two orthogonal unit vectors",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int) {
            d.putAndInsertString(DCM_ImageOrientationPatient, "2\\0\\0\\0\\1\\0");
          });
        }),
      k("dcm_pixel_spacing_zero", "failed", "PixelSpacing '0\\0' is not two positive numbers",
        [](const fs::path& f) {
          edit(series(f),
               [](DcmDataset& d, int) { d.putAndInsertString(DCM_PixelSpacing, "0\\0"); });
        }),
      k("dcm_no_pixel_spacing", "warning", "no PixelSpacing",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int) { d.findAndDeleteElement(DCM_PixelSpacing); });
        }),
      k("dcm_no_position", "failed", "no ImagePositionPatient",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int i) {
            if (i == 2) d.findAndDeleteElement(DCM_ImagePositionPatient);
          });
        }),
      k("dcm_mixed_orientation", "failed", "different orientations",
        [](const fs::path& f) {
          edit(series(f), [](DcmDataset& d, int i) {
            if (i == 3) d.putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
          });
        }),
      k("dcm_duplicate_slice", "failed", "two slices at one position",
        [](const fs::path& f) {
          const fs::path dir = series(f);
          fs::copy_file(dir / "S1_IM2.dcm", dir / "S1_IM2b.dcm");
          DcmFileFormat ff;
          ff.loadFile((dir / "S1_IM2b.dcm").c_str());
          ff.getDataset()->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.8.498.99");
          ff.saveFile((dir / "S1_IM2b.dcm").c_str(), EXS_LittleEndianExplicit);
        }),
      k("dcm_missing_slice", "failed", "uneven slice spacing",
        [](const fs::path& f) {
          DicomSeriesSpec s;
          s.drop_slices = {3};
          series(f, 6, 12, s);
        }),
      k("dcm_single_slice", "skipped", "not a 3-D series",
        [](const fs::path& f) {
          for (const auto& p : files_in(series(f)))
            if (p.filename() != "S1_IM1.dcm") fs::remove(p);
        }),
      k("dcm_zero_byte", "skipped", "an empty file",
        [](const fs::path& f) {
          fs::create_directories(f);
          bytes_to(f / "empty.dcm", "");
        }),
      k("dcm_unparseable", "skipped", "not readable as DICOM",
        [](const fs::path& f) {
          fs::create_directories(f);
          bytes_to(f / "junk", std::string(128, '\0') + "DICM" + std::string(40, '\x7f'));
        }),
      k("dcm_dicomdir_alone", "skipped", "a DICOMDIR",
        [](const fs::path& f) {
          const fs::path dir = series(f, 3);
          const auto files = files_in(dir);
          DcmFileFormat ff;
          ff.loadFile(files[0].c_str());
          ff.getDataset()->findAndDeleteElement(DCM_PixelData);
          ff.saveFile((dir / "DICOMDIR").c_str(), EXS_LittleEndianExplicit);
          for (const auto& p : files) fs::remove(p);
        }),
      k("dcm_sr_beside", "ok,skipped", "no pixel data",
        [](const fs::path& f) {
          const fs::path dir = series(f);
          DcmFileFormat ff;
          ff.loadFile((dir / "S1_IM1.dcm").c_str());
          DcmDataset& d = *ff.getDataset();
          for (const DcmTagKey& t : {DCM_PixelData, DCM_Rows, DCM_Columns, DCM_BitsAllocated})
            d.findAndDeleteElement(t);
          d.putAndInsertString(DCM_Modality, "SR");
          d.putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.8.498.77");
          d.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.8.498.77.1");
          d.putAndInsertString(DCM_SeriesNumber, "99");
          ff.saveFile((dir / "report.dcm").c_str(), EXS_LittleEndianExplicit);
        },
        2),
      k("dcm_echoes_interleaved", "ok", "",
        [](const fs::path& f) {
          DicomSeriesSpec one, two;
          one.series_uid = two.series_uid = "1.2.826.0.1.3680043.8.498.55";
          two.series_number = 2;
          series(f, 6, 12, one);
          series(f, 6, 12, two);
          edit(f, [](DcmDataset& d, int i) {  // files sorted: S1_* (echo 1), then S2_* (echo 2)
            const bool second = i >= 6;
            d.putAndInsertString(DCM_SeriesNumber, "1");
            d.putAndInsertString(DCM_EchoNumbers, second ? "2" : "1");
            d.putAndInsertString(DCM_SOPInstanceUID,
                                 ("1.2.826.0.1.3680043.8.498.5." + std::to_string(i + 1)).c_str());
          });
        },
        2),
      // Enhanced MR objects: one multi-frame file (frames stored in reverse, rescaled per frame).
      k("enh_good", "ok", "", [](const fs::path& f) { enhanced(f, {}); }),
      k("enh_rle", "ok", "",
        [](const fs::path& f) {
          EnhancedSpec s;
          s.rle = true;
          enhanced(f, s);
        }),
      k("enh_frames_disagree", "failed", "NumberOfFrames 7 but 6 per-frame functional groups",
        [](const fs::path& f) {
          edit(enhanced(f, {}), [](DcmDataset& d, int) {
            d.putAndInsertString(DCM_NumberOfFrames, "7");
          });
        }),
      k("enh_pixel_data_short", "failed", "pixel data shorter than",
        [](const fs::path& f) {
          EnhancedSpec s;
          s.cut_pixel_bytes = 64;
          enhanced(f, s);
        }),
      k("enh_repeated_position", "failed", "two slices at one position",
        [](const fs::path& f) {
          EnhancedSpec s;
          s.same_position_as_first = 3;
          enhanced(f, s);
        }),
      k("enh_truncated", "failed", "Enhanced MR object",
        [](const fs::path& f) {
          const fs::path obj = fs::path(enhanced(f, {})) / "obj.dcm";
          fs::resize_file(obj, fs::file_size(obj) - 60);
        }),
  };
}

std::vector<CorpusKind> analyze_pair_kinds() {
  auto pair = [](const fs::path& dir, const std::string& id, const char* magic) {
    Bytes h = nifti1_header(12, 10, 6, true);
    h.text(344, magic, 4);
    h.set<float>(108, 0);  // vox_offset: the voxels start the .img
    bytes_to(dir / (id + ".hdr"), h.str().substr(0, 348));
    bytes_to(dir / (id + ".img"), voxel_bytes(12, 10, 6, true));
  };
  return {
      CorpusKind{"hdr_nifti_pair", "ok", "",
                 [pair](const fs::path& d, const std::string& id) { pair(d, id, "ni1\0"); }},
      CorpusKind{"hdr_analyze_pair", "failed", "an Analyze 7.5 header has no orientation",
                 [pair](const fs::path& d, const std::string& id) {
                   pair(d, id, std::string(4, '\0').c_str());
                 }},
  };
}

}  // namespace spineparse::testing
