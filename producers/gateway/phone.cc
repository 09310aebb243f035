#include "producers/gateway/phone.h"

#include <phonenumbers/phonenumberutil.h>

namespace faxflow {

Result<std::string> NormalizeNumber(std::string_view input, std::string_view default_region,
                                    bool allow_test_numbers) {
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  const std::string text(input);
  if (text.empty()) return Status::Permanent(Code::kInvalidArgument, "empty phone number");
  if (text.size() > 40) return Status::Permanent(Code::kInvalidArgument, "phone number longer than 40 characters");
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  const auto err = util.Parse(text, std::string(default_region), &number);
  if (err != PhoneNumberUtil::NO_PARSING_ERROR) {
    return Status::Permanent(Code::kInvalidArgument, "'" + text + "' is not a phone number");
  }
  std::string e164;
  util.Format(number, PhoneNumberUtil::E164, &e164);
  // The simulated line answers on +1 555 01xx xxx style numbers that libphonenumber calls
  // invalid (555 exchange); they are allowed for tests and demos only.
  const bool test_number = allow_test_numbers && e164.rfind("+1555", 0) == 0 && e164.size() == 12;
  if (!test_number && !util.IsValidNumber(number)) {
    return Status::Permanent(Code::kInvalidArgument, "'" + text + "' is not a valid number (" + e164 + ")");
  }
  return e164;
}

}  // namespace faxflow
