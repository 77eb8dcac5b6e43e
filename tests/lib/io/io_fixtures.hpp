// Builders of small volumes on disk for the io tests, written through ITK directly so that the
// tests do not depend on the code under test to make their inputs.
#pragma once

#include <itkImage.h>
#include <itkImageFileWriter.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <array>
#include <string>

namespace spineparse::testing {

// Writes an N-D image whose voxel at ITK index idx is f(idx).
template <typename T, unsigned N, typename F>
void write_itk(const std::string& path, const std::array<std::size_t, N>& size, F f,
               const std::array<double, N>& spacing = {}, bool rotate = false) {
  using Image = itk::Image<T, N>;
  auto img = Image::New();
  typename Image::RegionType region;
  typename Image::SizeType s;
  for (unsigned i = 0; i < N; ++i) s[i] = size[i];
  region.SetSize(s);
  img->SetRegions(region);
  img->Allocate();
  typename Image::SpacingType sp;
  typename Image::PointType org;
  for (unsigned i = 0; i < N; ++i) {
    sp[i] = spacing[i] > 0 ? spacing[i] : 1.0 + 0.25 * i;
    org[i] = -10.0 * (i + 1);
  }
  img->SetSpacing(sp);
  img->SetOrigin(org);
  if (rotate && N == 3) {
    typename Image::DirectionType d;
    d.Fill(0);
    d[0][2] = 1;
    d[1][0] = 1;
    d[2][1] = -1;
    img->SetDirection(d);
  }
  itk::ImageRegionIteratorWithIndex<Image> it(img, region);
  for (it.GoToBegin(); !it.IsAtEnd(); ++it) it.Set(static_cast<T>(f(it.GetIndex())));
  auto w = itk::ImageFileWriter<Image>::New();
  w->SetFileName(path);
  w->SetInput(img);
  w->Update();
}

}  // namespace spineparse::testing
