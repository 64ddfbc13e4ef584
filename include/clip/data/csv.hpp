// clip/data/csv.hpp: OpenCLIP's CSV training data (open_clip_train/data.py `CsvDataset`): a table
// whose header names the columns, one image path and one caption per row.
//
//   clip::csv_dataset data("train.csv", {.separator = "\t", .image_key = "filepath", .caption_key = "title"});
//   clip::example e = data.get(0);     // read_image(<path of row 0>), its caption
//
// The defaults are OpenCLIP's: --csv-separator "\t", --csv-img-key filepath, --csv-caption-key
// title. The text is read as Python's csv module (pandas' C parser) reads it with one-character
// separators: a field that starts with '"' is quoted, may hold separators and line breaks, and
// writes a quote as ""; a quote inside an unquoted field is an ordinary character; records end
// at "\n", "\r\n" or "\r"; blank lines are skipped; a UTF-8 byte-order mark is ignored.
//
// Differences from OpenCLIP, on purpose: a relative image path is taken relative to the CSV
// file's directory (OpenCLIP opens it relative to the working directory), so a dataset folder
// can be moved whole; and where pandas guesses (a row with fewer fields filled with NaN, text
// after a closing quote glued to the field, an empty caption read as "nan"), clip refuses the
// file. Every problem throws clip::io_error naming the file and line: a row with another number
// of fields than the header, a quoted field that never closes, a character after a closing quote
// other than the separator or the end of the record, a missing column, an empty image path. A
// multi-character separator (a regular expression to pandas) is not supported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/data/dataset.hpp"
#include "clip/image/decode.hpp"

namespace clip {

/// A parsed CSV file: the header's column names and the rows, each with the line it starts on.
struct csv_table {
    struct row {
        std::vector<std::string> fields;
        std::size_t line = 0; ///< 1-based line of the row's first character
    };
    std::vector<std::string> columns;
    std::vector<row> rows;

    /// The position of column `key`; io_error naming `source` and the columns there are.
    std::size_t column(std::string_view key, std::string_view source) const {
        for (std::size_t i = 0; i < columns.size(); ++i)
            if (columns[i] == key) return i;
        std::string listed;
        for (const std::string& c : columns) listed += (listed.empty() ? "\"" : ", \"") + c + "\"";
        throw io_error(detail::message(source, ":1: no column \"", key, "\" (the header has ", listed, ")"));
    }
};

/// Parses CSV text (see the header comment); `source` names it in errors ("file.csv").
inline csv_table parse_csv(std::string_view text, char separator, std::string_view source) {
    detail::check<io_error>(separator != '"' && separator != '\n' && separator != '\r', source,
                            ": the separator cannot be a quote or a line break");
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
    csv_table table;
    std::size_t at = 0, line = 1;
    const auto end_of_record = [&](std::size_t i) { return i >= text.size() || text[i] == '\n' || text[i] == '\r'; };
    // Steps over one record terminator at `at`, counting the line.
    const auto skip_terminator = [&] {
        if (at < text.size() && text[at] == '\r') ++at;
        if (at < text.size() && text[at] == '\n') ++at;
        ++line;
    };
    bool header = true;
    while (at < text.size()) {
        if (end_of_record(at)) { // a blank line
            skip_terminator();
            continue;
        }
        csv_table::row record;
        record.line = line;
        for (;;) {
            std::string field;
            if (text[at] == '"') {
                const std::size_t opened = line;
                ++at;
                for (;;) {
                    detail::check<io_error>(at < text.size(), source, ":", opened, ": a quoted field never closes");
                    const char c = text[at++];
                    if (c == '"') {
                        if (at < text.size() && text[at] == '"') {
                            field += '"';
                            ++at;
                            continue;
                        }
                        break;
                    }
                    if (c == '\n' || (c == '\r' && (at >= text.size() || text[at] != '\n'))) ++line;
                    field += c;
                }
                if (!end_of_record(at) && text[at] != separator)
                    throw io_error(detail::message(source, ":", line, ": unexpected character '", text[at],
                                                   "' after a closing quote (expected the separator or the end of the row)"));
            } else {
                const std::size_t begin = at;
                while (!end_of_record(at) && text[at] != separator) ++at;
                field.assign(text.substr(begin, at - begin));
            }
            record.fields.push_back(std::move(field));
            if (end_of_record(at)) break;
            ++at; // the separator; a separator ending the record leaves one more empty field
            if (end_of_record(at)) {
                record.fields.emplace_back();
                break;
            }
        }
        if (at < text.size()) skip_terminator();
        if (header) {
            table.columns = std::move(record.fields);
            header = false;
            continue;
        }
        detail::check<io_error>(record.fields.size() == table.columns.size(), source, ":", record.line, ": ",
                                record.fields.size(), " fields, but the header has ", table.columns.size());
        table.rows.push_back(std::move(record));
    }
    detail::check<io_error>(!header, source, ": empty file (no header row)");
    return table;
}

/// OpenCLIP's --csv-separator, --csv-img-key, --csv-caption-key, with their defaults.
struct csv_options {
    std::string separator = "\t";
    std::string image_key = "filepath";
    std::string caption_key = "title";
};

/// OpenCLIP's CsvDataset: image i is read from row i's image path, its caption is the row's.
class csv_dataset final : public dataset {
public:
    explicit csv_dataset(const std::filesystem::path& file, const csv_options& options = {}) : file_(file) {
        const std::string source = file.string();
        detail::check<io_error>(options.separator.size() == 1, source, ": the separator must be one character, got \"",
                                options.separator, "\"");
        const std::vector<std::uint8_t> bytes = detail::read_file_bytes(file, "csv_dataset");
        const csv_table table = parse_csv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                                          options.separator[0], source);
        const std::size_t image_column = table.column(options.image_key, source);
        const std::size_t caption_column = table.column(options.caption_key, source);
        const std::filesystem::path directory = file.parent_path();
        rows_.reserve(table.rows.size());
        for (const csv_table::row& r : table.rows) {
            const std::string& image_path = r.fields[image_column];
            detail::check<io_error>(!image_path.empty(), source, ":", r.line, ": empty ", options.image_key);
            std::filesystem::path p(image_path);
            if (p.is_relative()) p = directory / p;
            rows_.push_back({std::move(p), r.fields[caption_column], r.line});
        }
    }

    std::size_t size() const override { return rows_.size(); }
    example get(std::size_t i) const override { return {read_image(image_path(i)), caption(i)}; }
    std::string name(std::size_t i) const override {
        return detail::message(file_.string(), ":", line(i), " (\"", image_path(i).string(), "\")");
    }

    /// Row i's image path (relative paths already joined to the CSV's directory).
    const std::filesystem::path& image_path(std::size_t i) const { return at(i).image; }
    const std::string& caption(std::size_t i) const { return at(i).caption; }
    /// The line of the CSV file that row i starts on.
    std::size_t line(std::size_t i) const { return at(i).line; }

private:
    struct entry {
        std::filesystem::path image;
        std::string caption;
        std::size_t line;
    };
    const entry& at(std::size_t i) const {
        detail::check<index_error>(i < rows_.size(), "csv_dataset: row ", i, " of ", rows_.size());
        return rows_[i];
    }

    std::filesystem::path file_;
    std::vector<entry> rows_;
};

} // namespace clip
