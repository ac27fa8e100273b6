#pragma once
// Files written so that a reader never sees a half-written one: every output
// (model, checkpoint, crop, map, report) goes to a temporary name in the same
// directory and is renamed into place once complete.
#include <string>
#include <string_view>

namespace edan {

// Writes bytes to path atomically (temporary file in the same directory,
// fsync, rename). Creates missing parent directories. Throws FatalError
// naming the path on any failure (the temporary file is removed).
void write_file_atomic(const std::string& path, std::string_view bytes);

// Creates a directory and its parents. Throws FatalError naming the path.
void make_dirs(const std::string& path);

// A temporary path beside `path` (same directory, unique to this process
// and call), for writers that need a file name (e.g. torch::save).
std::string temp_path_for(const std::string& path);

// Renames from -> to (same filesystem). Throws FatalError naming both.
void rename_into_place(const std::string& from, const std::string& to);

}  // namespace edan
