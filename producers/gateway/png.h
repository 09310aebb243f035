// PNG encoding of fax pages for previews (GET /v1/faxes/{id}/pages/{n}). Bilevel, 1 bit per
// pixel, grayscale, with an uncompressed (stored) zlib stream: no compression library needed and
// a 1728x2200 page stays under 500 KB.
#pragma once

#include <string>

#include "pages/pages.h"

namespace faxflow {

// `page` bits are 1 = black; PNG grayscale 1-bit is 0 = black, so bits are inverted.
std::string EncodePng(const pages::Bitmap& page);

}  // namespace faxflow
