// op_cases.h: the table of engine op cases, by name. The same names key the PyTorch fixtures
// (tools/reference/make_op_fixtures.py), so one table drives the fixture comparison and the f64
// gradient checks.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip::test {

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&)>;

const std::map<std::string, OpFn>& op_cases();

}  // namespace aclip::test
