#include "qalign/base/json_file.h"

#include <fstream>
#include <vector>

#include "qalign/base/bounded_file.h"
#include "qalign/base/error.h"

namespace qalign::io {

namespace {

using nlohmann::json;

// nlohmann's SAX events built into a tree, as its own DOM parser does, plus the nesting bound.
// (nlohmann's parse with a callback bounds nesting too, but in quadratic time: at each object's
// end it scans the whole parent for discarded values.)
class TreeBuilder {
 public:
  // `outer`: the containers already open around this tree (a streamed array's element has one).
  TreeBuilder(const std::string& source, int outer) : source_(source), outer_(outer) {}

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return put(v); }
  bool string(json::string_t& v) { return put(std::move(v)); }
  bool binary(json::binary_t& v) { return put(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(json::value_t::object); }
  bool start_array(std::size_t) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    // A repeated key keeps its last value, as Python's json does.
    slot_ = &(*open_.back())[std::move(k)];
    return true;
  }
  // What the DOM parser throws: parse_error.101 with line and column, out_of_range.406, ...
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception& e) {
    throw e;
  }

  // Containers open now; 0 once the tree is complete.
  size_t depth() const { return open_.size(); }
  json take() { return std::move(root_); }

 private:
  template <class V>
  bool put(V&& v) {
    place(json(std::forward<V>(v)));
    return true;
  }
  json* place(json&& v) {
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& parent = *open_.back();
    if (parent.is_array()) {
      auto& items = parent.get_ref<json::array_t&>();
      items.push_back(std::move(v));
      return &items.back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  bool open(json::value_t type) {
    if (outer_ + static_cast<int>(open_.size()) >= kMaxJsonDepth)
      fail(source_, "", "nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    // A child is complete before its parent grows again, so its address stays valid while open.
    open_.push_back(place(json(type)));
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  const std::string& source_;
  const int outer_;
  json root_;
  std::vector<json*> open_;
  json* slot_ = nullptr;
};

// The items of the top-level container (an array's elements or an object's members), each built
// by the TreeBuilder and handed over as soon as it is complete.
class TopLevelItems {
 public:
  using Each = std::function<void(size_t index, std::string& key, json&& value)>;
  TopLevelItems(const std::string& source, json::value_t container, const std::string& what, const Each& each)
      : source_(source), container_(container), what_(what), each_(each), item_(source, 1) {}

  bool null() {
    return scalar("null", [&] { return item_.null(); });
  }
  bool boolean(bool v) {
    return scalar("boolean", [&] { return item_.boolean(v); });
  }
  bool number_integer(json::number_integer_t v) {
    return scalar("number", [&] { return item_.number_integer(v); });
  }
  bool number_unsigned(json::number_unsigned_t v) {
    return scalar("number", [&] { return item_.number_unsigned(v); });
  }
  bool number_float(json::number_float_t v, const json::string_t& s) {
    return scalar("number", [&] { return item_.number_float(v, s); });
  }
  bool string(json::string_t& v) {
    return scalar("string", [&] { return item_.string(v); });
  }
  bool binary(json::binary_t& v) {
    return scalar("binary", [&] { return item_.binary(v); });
  }
  bool key(json::string_t& k) {
    if (item_.depth() > 0) return item_.key(k);
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t n) { return start(json::value_t::object, "object") || item_.start_object(n); }
  bool start_array(std::size_t n) { return start(json::value_t::array, "array") || item_.start_array(n); }
  bool end_object() { return item_.depth() == 0 || (item_.end_object() && hand_over_if_complete()); }
  bool end_array() { return item_.depth() == 0 || (item_.end_array() && hand_over_if_complete()); }
  template <class Exception>
  bool parse_error(std::size_t p, const std::string& t, const Exception& e) {
    return item_.parse_error(p, t, e);
  }

 private:
  // True when this opens the top-level container itself.
  bool start(json::value_t type, const char* name) {
    if (opened_) return false;
    if (type != container_) wrong_top_level(name);
    return opened_ = true;
  }
  template <class Event>
  bool scalar(const char* type, const Event& event) {
    if (!opened_) wrong_top_level(type);
    return event() && hand_over_if_complete();
  }
  bool hand_over_if_complete() {
    if (item_.depth() == 0) each_(index_++, key_, item_.take());
    return true;
  }
  [[noreturn]] void wrong_top_level(const std::string& type) const {
    fail(source_, "", "expected " + what_ + ", got " + type);
  }

  const std::string& source_;
  const json::value_t container_;
  const std::string& what_;
  const Each& each_;
  TreeBuilder item_;
  bool opened_ = false;
  size_t index_ = 0;
  std::string key_;
};

[[noreturn]] void invalid(const std::string& path, const json::exception& e) {
  fail(path, "", std::string("not valid JSON: ") + e.what());
}

}  // namespace

json parse_json(std::string_view text, const std::string& source) {
  TreeBuilder tree(source, 0);
  json::sax_parse(text.data(), text.data() + text.size(), &tree);
  return tree.take();
}

json read_json_file(const std::string& path, uint64_t max_bytes, const std::string& what) {
  const std::string text = read_file_at_most(path, max_bytes, what);
  try {
    return parse_json(text, path);
  } catch (const json::exception& e) {
    invalid(path, e);
  }
}

void for_each_json_array_element(const std::string& path, uint64_t max_bytes, const std::string& what,
                                 const std::function<void(size_t, json&&)>& each) {
  check_file_size(path, max_bytes, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open file");
  const TopLevelItems::Each element = [&](size_t index, std::string&, json&& value) { each(index, std::move(value)); };
  TopLevelItems items(path, json::value_t::array, what, element);
  try {
    json::sax_parse(in, &items);
  } catch (const json::exception& e) {
    invalid(path, e);
  }
}

void for_each_json_member(std::string_view text, const std::string& source, const std::string& what,
                          const std::function<void(std::string& key, json&& value)>& each) {
  const TopLevelItems::Each member = [&](size_t, std::string& key, json&& value) { each(key, std::move(value)); };
  TopLevelItems items(source, json::value_t::object, what, member);
  json::sax_parse(text.data(), text.data() + text.size(), &items);
}

}  // namespace qalign::io
