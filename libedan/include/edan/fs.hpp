#pragma once
// Files written so that a reader never sees a half-written one: every output
// (model, checkpoint, crop, map, report) goes to a temporary name in the same
// directory and is renamed into place once complete.
#include <string>
#include <string_view>

namespace edan {

// Writes bytes to path atomically (temporary file in the same directory,
// renamed into place once complete): a killed process or a full disk never
// leaves a partial file under `path`. With durable, the file and its
// directory are also fsync'ed before and after the rename, so that the file
// survives a power loss too (models, checkpoints: hours of work; crops and
// maps can be made again and skip the cost). Creates missing parent
// directories. Throws FatalError naming the path on any failure (the
// temporary file is removed).
void write_file_atomic(const std::string& path, std::string_view bytes, bool durable = false);

// Checks, before long work, that a file can later be written at `path`: it
// is not a directory and a file can be created beside it (its directory
// exists, or is created, and is writable). Leaves no file behind. Throws
// FatalError naming the path otherwise.
void check_writable(const std::string& path);

// Creates a directory and its parents. Throws FatalError naming the path.
void make_dirs(const std::string& path);

// A temporary path beside `path` (same directory, unique to this process
// and call), for writers that need a file name (e.g. torch::save).
std::string temp_path_for(const std::string& path);

// Renames from -> to (same filesystem). Throws FatalError naming both.
void rename_into_place(const std::string& from, const std::string& to);

}  // namespace edan
