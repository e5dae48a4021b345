// One CSV field (RFC 4180): quoted when it holds a comma, a double quote, a
// carriage return or a line feed, with double quotes doubled; as is otherwise.
#pragma once

#include <string>

namespace lk {

inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace lk
