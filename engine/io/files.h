// files.h: whole files, read and written safely, for every reader and writer of aclip. A write is atomic
// (a crash leaves the old file or the new one, never half of one); folders are made with errors that say
// why not; a file opened for reading that is missing, unreadable or a directory is an error naming it.
#pragma once
#include <fstream>
#include <string>

namespace aclip {

// Writes bytes to path atomically: path.tmp.PID, fsync, rename over path, fsync the directory.
void write_file_atomic(const std::string& path, const std::string& bytes);
// Creates dir and its parents where missing; an error names the path and the reason (not a directory,
// permission denied).
void create_directories(const std::string& dir);

// An error when path is a directory (an ifstream, fopen or gzopen opens one, and then reads nothing).
void check_not_a_directory(const std::string& path);
// Before long work whose result goes to the file `path`: an error unless its folder exists and is writable
// and path is not a directory, so that the mistake is found before the work rather than after it.
void check_can_write(const std::string& path);
// Opens path for reading; a directory, or a file that cannot be opened, is an error naming it, with hint.
std::ifstream open_for_reading(const std::string& path, const std::string& hint = "check the path",
                               std::ios::openmode mode = std::ios::in);
// The whole of path's bytes (errors as open_for_reading's, and a failed read).
std::string read_file(const std::string& path, const std::string& hint = "check the path");

}  // namespace aclip
