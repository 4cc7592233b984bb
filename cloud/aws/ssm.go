package aws

import (
	"context"
	"fmt"
	"strings"

	sdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"weir/config"
)

// SSMPrefix marks a configuration read from SSM Parameter Store: ssm:/NAME.
const SSMPrefix = "ssm:"

// IsSSM reports whether a -config value names an SSM parameter.
func IsSSM(path string) bool { return strings.HasPrefix(path, SSMPrefix) }

// LoadConfig reads the configuration from the SSM parameter that path
// (ssm:/NAME) names, decrypted when it is a SecureString, and parses it; errors
// name path as the file: ssm:/NAME:LINE: message.
func LoadConfig(ctx context.Context, s *Session, path string) (*config.Config, error) {
	name := strings.TrimPrefix(path, SSMPrefix)
	if name == "" {
		return nil, &config.Error{File: path, Msg: "no parameter name (like ssm:/weir/config)"}
	}
	cfg, err := s.Config(ctx)
	if err != nil {
		return nil, &config.Error{File: path, Msg: err.Error()}
	}
	out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: sdk.String(name), WithDecryption: sdk.Bool(true)})
	if err != nil {
		return nil, &config.Error{File: path, Msg: fmt.Sprintf("ssm:GetParameter: %v", err)}
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return nil, &config.Error{File: path, Msg: "ssm:GetParameter: no value"}
	}
	data := []byte(*out.Parameter.Value)
	if int64(len(data)) > config.MaxConfigSize {
		return nil, &config.Error{File: path, Msg: "larger than the limit of a configuration"}
	}
	return config.Parse(path, data)
}
