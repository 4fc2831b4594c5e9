#include <string>
#include <vector>

namespace text {

class Splitter {
public:
    explicit Splitter(char sep) : sep_(sep) {}

    std::vector<std::string> split(const std::string &s) const {
        <CURSOR>
    }

private:
    char sep_;
};

}  // namespace text
